#include "guard.h"
#include "test.h"

#define MIB (1ull << 20)

static void pids_limit(void)
{
    /* Half the kernel's slots, so the agent and the kernel keep the other half. */
    CHECK(pyro_guard_limits_for(1000, 1024 * MIB).pids_max == 500);
    /* Capped: a fork bomb must end long before memory does. */
    CHECK(pyro_guard_limits_for(15000, 1024 * MIB).pids_max == PYRO_GUARD_MAX_EXEC_TASKS);
    CHECK(pyro_guard_limits_for(1, 1024 * MIB).pids_max == 1);
    CHECK(pyro_guard_limits_for(0, 1024 * MIB).pids_max == 1);
}

static void memory_limit(void)
{
    /* An eighth is reserved, within [32, 128] MiB. */
    CHECK(pyro_guard_limits_for(1000, 512 * MIB).memory_max_bytes == 448 * MIB);
    CHECK(pyro_guard_limits_for(1000, 4096 * MIB).memory_max_bytes == 3968 * MIB);
    CHECK(pyro_guard_limits_for(1000, 128 * MIB).memory_max_bytes == 96 * MIB);
    /* Too small for the minimum reserve: half of it. */
    CHECK(pyro_guard_limits_for(1000, 48 * MIB).memory_max_bytes == 24 * MIB);
}

void test_guard(void)
{
    pids_limit();
    memory_limit();
}
