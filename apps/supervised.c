// supervised.c - a supervision tree that heals itself.
//
// The tree:
//
//   top (one_for_one)
//    |- workers (rest_for_one): "source" feeds "sink"
//    `- ticker: an OS process (/bin/sh printing a line a second)
//
// The program crashes the source twice and kills the ticker process, and
// shows the supervisors restarting each, with the events they send.  It
// exits 0 only if every restart happened (it runs as a test in make check).
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <rayo.h>

enum { TAG_CRASH = 1 };

static int
worker_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)ctx;
    (void)state;
    if (ra_msg_tag(msg) == TAG_CRASH) {
        return RA_EBADMSG; // "let it crash": the supervisor restarts us
    }
    return 0;
}

static const ra_behaviour_t worker = {"worker", NULL, worker_handle, NULL};

// Waits for the next supervisor event and prints it; returns its kind.
static const char *
next_event(ra_ctx_t *me, char *kind, size_t len, char *id, size_t idlen)
{
    ra_msg_t *m = NULL;
    while (ra_receive(me, 5000, &m) == 0) {
        const bson_t *doc = ra_msg_bson(m);
        bson_iter_t it;
        kind[0] = id[0] = '\0';
        if (doc != NULL && ra_msg_tag(m) == RA_TAG_SUP_EVENT) {
            if (bson_iter_init_find(&it, doc, "event")) {
                snprintf(kind, len, "%s", bson_iter_utf8(&it, NULL));
            }
            if (bson_iter_init_find(&it, doc, "id")) {
                snprintf(id, idlen, "%s", bson_iter_utf8(&it, NULL));
            }
            printf("  event: %-10s %s\n", kind, id);
            ra_msg_unref(&m);
            return kind;
        }
        ra_msg_unref(&m);
    }
    return NULL;
}

// Reads events until one of kind for child id arrives.
static int
expect(ra_ctx_t *me, const char *kind, const char *id)
{
    char k[32], i[64];
    while (next_event(me, k, sizeof(k), i, sizeof(i)) != NULL) {
        if (strcmp(k, kind) == 0 && strcmp(i, id) == 0) {
            return 0;
        }
    }
    fprintf(stderr, "FAILED: no '%s' event for %s\n", kind, id);
    return -1;
}

static ra_pid_t
child_pid(ra_ctx_t *me, ra_pid_t sup, const char *id, int64_t *ospid)
{
    ra_child_info_t kids[8];
    size_t n = 0;
    ra_sup_which_children(me, sup, kids, 8, &n);
    for (size_t i = 0; i < n && i < 8; i++) {
        if (strcmp(kids[i].id, id) == 0) {
            if (ospid != NULL) {
                *ospid = kids[i].ospid;
            }
            return kids[i].pid;
        }
    }
    return RA_PID_NIL;
}

int
main(void)
{
    ra_runtime_t *rt = NULL;
    ra_ctx_t *me = NULL;
    if (ra_runtime_new(&rt, NULL) != 0 || ra_scope_new(rt, &me) != 0) {
        fprintf(stderr, "FAILED: cannot start the runtime\n");
        return 1;
    }

    // The inner supervisor: if the source restarts, the sink (started
    // after it, and fed by it) restarts too.
    ra_child_spec_t worker_specs[] = {
        {.id = "source", .beh = &worker},
        {.id = "sink", .beh = &worker},
    };
    ra_sup_args_t workers = {
        .flags = {.strategy = RA_REST_FOR_ONE, .intensity = 5,
                  .period_ms = 10000, .events = ra_self(me)},
        .specs = worker_specs,
        .n = 2,
    };
    const char *ticker_argv[] = {"/bin/sh", "-c",
                                 "while :; do echo '  ticker: tick'; "
                                 "sleep 1; done",
                                 NULL};
    ra_child_spec_t top_specs[] = {
        {.id = "workers", .start = ra_sup_start_fn, .start_arg = &workers,
         .type = RA_SUPERVISOR},
        {.id = "ticker", .argv = ticker_argv, .shutdown_ms = 500},
    };
    ra_sup_flags_t top_flags = {.strategy = RA_ONE_FOR_ONE, .intensity = 5,
                                .period_ms = 10000, .events = ra_self(me)};
    ra_pid_t top;
    int rc = ra_sup_start(rt, NULL, &top_flags, top_specs, 2, &top);
    if (rc != 0) {
        fprintf(stderr, "FAILED: ra_sup_start: %s\n", ra_strerror(rc));
        return 1;
    }
    printf("Started: top -> workers (source, sink) and the ticker "
           "process.\n");
    int bad = expect(me, "started", "ticker");

    ra_pid_t inner = child_pid(me, top, "workers", NULL);
    for (int round = 1; round <= 2 && bad == 0; round++) {
        ra_pid_t source = child_pid(me, inner, "source", NULL);
        printf("Crash %d: the source fails; rest_for_one restarts source "
               "and sink.\n", round);
        ra_msg_t *m = NULL;
        if (ra_msg_new_bytes(&m, TAG_CRASH, NULL, 0) != 0 ||
            ra_send(me, source, &m) != 0) {
            ra_msg_unref(&m);
            bad = -1;
            break;
        }
        bad = expect(me, "restarted", "sink");
        ra_pid_t again = child_pid(me, inner, "source", NULL);
        if (bad == 0 && ra_pid_eq(again, source)) {
            fprintf(stderr, "FAILED: the source kept its pid\n");
            bad = -1;
        }
    }

    int64_t ospid = 0;
    child_pid(me, top, "ticker", &ospid);
    if (bad == 0 && ospid > 0) {
        printf("Killing the ticker process (pid %lld) with SIGKILL.\n",
               (long long)ospid);
        kill((pid_t)ospid, SIGKILL);
        bad = expect(me, "restarted", "ticker");
    }

    printf("Stopping the tree.\n");
    ra_sup_stop(me, top);
    ra_scope_destroy(&me);
    ra_runtime_destroy(&rt);
    if (bad != 0) {
        return 1;
    }
    printf("Every crash was healed.\n");
    return 0;
}
