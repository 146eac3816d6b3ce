/* Guest self-protection: whatever an exec does (fork bomb, memory hog, busy loop), the
 * agent keeps answering and the next exec can start.
 *
 * - The agent's oom_score_adj is -1000: the OOM killer never picks it.
 * - Exec children run in the cgroup v2 leaf PYRO_GUARD_CGROUP, which has a pids limit
 *   (a fork bomb runs out of slots there while the agent, in the root cgroup, can still
 *   fork), a memory limit below the VM's RAM (a hog is OOM-killed inside the leaf and the
 *   agent keeps memory to work with) and one CPU share against the agent's one.
 * - Each child sets its own oom_score_adj back to 0, so the OOM killer may pick it.
 *
 * This fences accidents and runaway programs, not a hostile root inside the guest: such a
 * process can leave the leaf or raise its limits. The host-side limits (the VMM jail) are
 * the boundary for that. Guest mode only: a host-process agent changes nothing here. */
#ifndef PYRO_GUARD_H
#define PYRO_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#define PYRO_GUARD_CGROUP_ROOT "/sys/fs/cgroup"
#define PYRO_GUARD_CGROUP PYRO_GUARD_CGROUP_ROOT "/pyro-exec"
/* At most this many tasks (processes and threads) in the exec leaf. */
#define PYRO_GUARD_MAX_EXEC_TASKS 1024
/* Memory kept outside the exec leaf's limit, for the agent and the kernel. */
#define PYRO_GUARD_MIN_RESERVE_BYTES (32ull << 20)
#define PYRO_GUARD_MAX_RESERVE_BYTES (128ull << 20)

struct pyro_guard_limits {
    uint64_t pids_max;
    uint64_t memory_max_bytes;
};

/* Limits for the exec leaf from the kernel's thread limit and the VM's RAM (pure). Half
 * the kernel's thread slots at most, so the agent and the kernel always keep the other
 * half; memory minus an eighth, clamped to [MIN, MAX]_RESERVE. */
struct pyro_guard_limits pyro_guard_limits_for(uint64_t threads_max, uint64_t ram_bytes);

/* Sets the agent's oom_score_adj, mounts cgroup2 and makes the exec leaf. Failures are
 * init errors (reported by hello): without them the guard does not hold. */
void pyro_guard_init(void);

/* Whether exec children are being placed in the leaf. */
bool pyro_guard_active(void);

/* In a freshly forked child, before exec: joins the leaf and resets oom_score_adj.
 * Async-signal-safe calls only; failures are ignored (the exec still runs). */
void pyro_guard_enter_child(void);

#endif
