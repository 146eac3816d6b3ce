#include "test.h"

#include <signal.h>

int test_failures;
int test_checks;

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_frame();
    test_json();
    test_init();
    test_path();
    test_confine();
    test_guard();
    test_proc();
    test_names();
    test_ring();
    test_service_log();
    test_sha256();
    test_park();
    test_entropy();
    printf("%d checks, %d failures\n", test_checks, test_failures);
    return test_failures == 0 ? 0 : 1;
}
