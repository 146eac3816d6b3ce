/* Runs the fuzz target over files given on the command line, for machines without
 * clang/libFuzzer and for replaying a crash input under gcc's sanitizers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    /* Replaying nothing would pass whatever the parsers do. */
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        static uint8_t buf[4 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        int failed = ferror(f);
        fclose(f);
        if (failed) {
            fprintf(stderr, "%s: read error\n", argv[i]);
            return 1;
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
