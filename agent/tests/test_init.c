#include "exec.h"
#include "init.h"
#include "rootfs.h"
#include "test.h"

#include <signal.h>
#include <string.h>

static void cmdline_keys(void)
{
    struct pyro_cmdline c;
    pyro_cmdline_parse("console=ttyS0 pyro.hostname=ws-1 quiet pyro.state=tmpfs\n", &c);
    CHECK(strcmp(c.hostname, "ws-1") == 0 && c.state_tmpfs && !c.probe);
    pyro_cmdline_parse("pyro.probe=1", &c);
    CHECK(c.probe && !c.state_tmpfs && !c.verbose && c.hostname[0] == '\0');
    pyro_cmdline_parse("pyro.verbose=1", &c);
    CHECK(c.verbose && c.park == PYRO_PARK_NONE);
    pyro_cmdline_parse("quiet pyro.park=1 pyro.hostname=pyro-template", &c);
    CHECK(c.park == PYRO_PARK_EARLY && strcmp(c.hostname, "pyro-template") == 0);
    pyro_cmdline_parse("pyro.park=late", &c);
    CHECK(c.park == PYRO_PARK_LATE);
    pyro_cmdline_parse("pyro.park=0 pyro.park=11 pyro.park pyro.park=lately pyro.park=LATE",
                       &c);
    CHECK(c.park == PYRO_PARK_NONE);
    pyro_cmdline_parse("pyro.probe=10 pyro.state=tmpfsx xpyro.hostname=a pyro.hostname=", &c);
    CHECK(!c.probe && !c.state_tmpfs && c.hostname[0] == '\0');
    char long_line[200] = "pyro.hostname=";
    memset(long_line + 14, 'h', 100);
    long_line[114] = '\0';
    pyro_cmdline_parse(long_line, &c);
    CHECK(strlen(c.hostname) == 64);
    pyro_cmdline_parse("", &c);
    CHECK(c.hostname[0] == '\0');
}

static void ext4_labels(void)
{
    uint8_t sb[1024] = {0};
    char label[17];
    CHECK(!pyro_ext4_label(sb, label));
    sb[0x38] = 0x53;
    sb[0x39] = 0xEF;
    memcpy(sb + 0x78, "pyro-base", 9);
    CHECK(pyro_ext4_label(sb, label) && strcmp(label, "pyro-base") == 0);
    memset(sb + 0x78, 'L', 16); /* a full 16-byte label has no NUL of its own */
    CHECK(pyro_ext4_label(sb, label) && strlen(label) == 16);
}

static void signal_names(void)
{
    char buf[16];
    CHECK(pyro_signal_from_name("TERM") == SIGTERM);
    CHECK(pyro_signal_from_name("USR2") == SIGUSR2);
    CHECK(pyro_signal_from_name("SEGV") == -1); /* a name, but not requestable */
    CHECK(pyro_signal_from_name("SIGTERM") == -1);
    CHECK(pyro_signal_from_name("term") == -1);
    CHECK(pyro_signal_from_name("") == -1);
    CHECK(strcmp(pyro_signal_name(SIGSEGV, buf, sizeof buf), "SEGV") == 0);
    CHECK(strcmp(pyro_signal_name(SIGKILL, buf, sizeof buf), "KILL") == 0);
    CHECK(strcmp(pyro_signal_name(40, buf, sizeof buf), "SIG40") == 0);
    CHECK(strcmp(pyro_signal_name(0, buf, sizeof buf), "SIG0") == 0);
}

void test_init(void)
{
    cmdline_keys();
    ext4_labels();
    signal_names();
}
