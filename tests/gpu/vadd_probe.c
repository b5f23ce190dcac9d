// vadd_probe.c - adds two vectors of 1 << 20 floats on GPU 0 with
// vadd_run and prints one JSON line, for running by hand or from a script
// on a machine that may have a GPU:
//
//     {"cuda_visible_devices": "0", "device_count": 1, "device": "...",
//      "pci": "0000:3b:00.0", "n": 1048576, "mismatches": 0,
//      "kernel_ms": 0.123}
//
// (on one line; cuda_visible_devices is null when the variable is unset).
// Exits 0 when every sum is right, 77 after printing {"skip": "no CUDA
// driver"} when there is no driver or no device, and 1 on any failure:
// wrong sums (the line above, with mismatches > 0) or a failing call
// ({"error": "...", "rc": N}).  Why it skipped or failed also goes to
// stderr.
#include <stdio.h>
#include <stdlib.h>

#include "cuda_vadd.h"

// put_json_string prints s as a JSON string, or null for NULL.
static void
put_json_string(const char *s)
{
    if (s == NULL) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static void
put_result(const vadd_result_t *res)
{
    fputs("{\"cuda_visible_devices\": ", stdout);
    put_json_string(getenv("CUDA_VISIBLE_DEVICES"));
    printf(", \"device_count\": %d, \"device\": ", res->device_count);
    put_json_string(res->device_name);
    fputs(", \"pci\": ", stdout);
    put_json_string(res->pci_bus_id);
    printf(", \"n\": %u, \"mismatches\": %u, \"kernel_ms\": %.3f}\n", res->n,
           res->mismatches, res->kernel_ms);
}

int
main(void)
{
    vadd_result_t res;
    char err[1024];
    int rc = vadd_run(1u << 20, &res, err, sizeof(err));

    if (rc == VADD_NO_DRIVER) {
        fprintf(stderr, "vadd_probe: %s\n", err);
        puts("{\"skip\": \"no CUDA driver\"}");
        return 77;
    }
    if (rc != 0) {
        fprintf(stderr, "vadd_probe: %s\n", err);
        fputs("{\"error\": ", stdout);
        put_json_string(err);
        printf(", \"rc\": %d}\n", rc);
        return 1;
    }
    put_result(&res);
    if (res.mismatches != 0) {
        fprintf(stderr, "vadd_probe: %u of %u sums wrong\n", res.mismatches,
                res.n);
        return 1;
    }
    return 0;
}
