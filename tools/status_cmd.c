// status_cmd.c - `rayo status` and `rayo list`: what a running cluster
// holds, read through the C API (ra_node_list, ra_pg_list) by a client
// that joins the cluster without a job's workers.
//
// The result goes to stdout (a table, or one JSON document); errors go to
// stderr.
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rayo.h>

#include "rayo_tool.h"

static const char status_usage[] =
    "Usage: rayo status [OPTIONS]\n"
    "Show the cluster: its nodes with their topology, resources used and\n"
    "free, workers, and the demand that waits (lease requests, pending\n"
    "placement groups).\n"
    "\n"
    "Options:\n"
    "  --address ADDR   the cluster: \"auto\" (default: $RAYO_ADDRESS, else\n"
    "                   the newest in the temp dir) or a session directory\n"
    "  --temp-dir DIR   the temp dir the cluster was started with (default\n"
    "                   $RAYO_TEMP_DIR, else /tmp/rayo)\n"
    "  --format FORMAT  table (default) or json\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 shown, 1 no cluster could be reached, 2 a bad command\n"
    "line.\n";

static const char list_usage[] =
    "Usage: rayo list WHAT [OPTIONS]\n"
    "List what a running cluster holds.  WHAT is one of:\n"
    "  actors             each actor, dead ones too: state, class, name,\n"
    "                     where it runs, restarts, why it died\n"
    "  jobs               each job (driver): state, process, submission\n"
    "  nodes              each node: state, resources, workers, topology\n"
    "  placement-groups   each placement group: state, strategy, bundles\n"
    "  tasks              the newest remote function tasks (--limit):\n"
    "                     state, function, attempt, where they ran, error\n"
    "  workers            each worker process: node, state, actors, the\n"
    "                     driver of its job, its GPUs\n"
    "                     and the node of each\n"
    "\n"
    "Options:\n"
    "  --address ADDR   the cluster: \"auto\" (default: $RAYO_ADDRESS, else\n"
    "                   the newest in the temp dir) or a session directory\n"
    "  --temp-dir DIR   the temp dir the cluster was started with\n"
    "  --format FORMAT  table (default) or json\n"
    "  --limit N        tasks: the newest N (default 100; 0: all the GCS\n"
    "                   holds, up to 100,000)\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 listed, 1 no cluster could be reached, 2 a bad command\n"
    "line.\n";

typedef struct cli {
    ra_tool_where_t where;   // --address, --temp-dir
    bool json;
    long limit;              // --limit (-1: not given)
} cli_t;

// parse_common reads the options every command here takes.
static int
parse_common(const char *prog, const char *usage, int argc, char **argv,
             cli_t *o)
{
    enum { O_FORMAT = 1000, O_LIMIT };
    static const struct option longopts[] = {
        RA_TOOL_WHERE_LONGOPTS,
        {"format", required_argument, NULL, O_FORMAT},
        {"limit", required_argument, NULL, O_LIMIT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            return -1;
        case O_FORMAT:
            if (strcmp(optarg, "json") == 0) {
                o->json = true;
            } else if (strcmp(optarg, "table") != 0) {
                return ra__tool_usage_error(prog, "option '--format': "
                                            "table or json, not '%s'",
                                            optarg);
            }
            break;
        case O_LIMIT: {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (usage != list_usage) {
                return ra__tool_usage_error(prog, "option '--limit' is for "
                                            "rayo list tasks");
            }
            if (*optarg == '\0' || *end != '\0' || v < 0 || v > 10000000) {
                return ra__tool_usage_error(prog, "option '--limit': a "
                                            "number of tasks from 0 to "
                                            "10000000, not '%s'", optarg);
            }
            o->limit = v;
            break;
        }
        default:
            if (ra__tool_where_opt(c, optarg, &o->where)) {
                break;
            }
            return ra__tool_bad_option(prog, c, argv);
        }
    }
    if (optind < argc) {
        return ra__tool_usage_error(prog, "unexpected argument '%s'",
                                    argv[optind]);
    }
    return RA_TOOL_OK;
}

// connect joins the cluster as a client (no workers of its own).
static int
connect_cluster(const char *prog, const cli_t *o)
{
    char session[600];
    int rc = ra__tool_find_cluster(prog, o->where.address, o->where.temp, session,
                                   sizeof session);
    if (rc != RA_TOOL_OK) {
        return rc;
    }
    const char *addr = session;
    ra_init_opts_t io = {.address = addr, .temp_dir = o->where.temp,
                         .workers = RA_WORKERS_NONE, .threads = 1};
    rc = ra_init_opts(&io);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot reach the cluster at %s: %s\n", prog,
                addr, ra_strerror(rc));
        return RA_TOOL_FAIL;
    }
    return RA_TOOL_OK;
}

static void
append_resources(bson_t *doc, const char *key, const ra_resources_t *r)
{
    bson_t sub;
    bson_append_document_begin(doc, key, -1, &sub);
    BSON_APPEND_DOUBLE(&sub, "CPU", r->cpus);
    BSON_APPEND_DOUBLE(&sub, "GPU", r->gpus);
    if (r->memory > 0) {
        BSON_APPEND_DOUBLE(&sub, "memory", r->memory);
    }
    for (size_t i = 0; i < r->ncustom; i++) {
        BSON_APPEND_DOUBLE(&sub, r->custom[i].name, r->custom[i].amount);
    }
    bson_append_document_end(doc, &sub);
}

static void
append_node(bson_t *arr, const char *key, const ra_node_info_t *ni)
{
    bson_t d;
    bson_append_document_begin(arr, key, -1, &d);
    BSON_APPEND_INT64(&d, "node", ni->node);
    BSON_APPEND_INT64(&d, "daemon_pid", ni->proc);
    BSON_APPEND_UTF8(&d, "state", ni->alive ? "ALIVE" : "DEAD");
    append_resources(&d, "total", &ni->total);
    append_resources(&d, "placement_groups", &ni->bundles);
    bson_t av;
    bson_append_document_begin(&d, "available", -1, &av);
    BSON_APPEND_DOUBLE(&av, "CPU", ni->cpus_avail);
    BSON_APPEND_DOUBLE(&av, "GPU", ni->gpus_avail);
    bson_append_document_end(&d, &av);
    BSON_APPEND_INT64(&d, "workers", ni->workers);
    BSON_APPEND_INT64(&d, "leases", ni->leases);
    BSON_APPEND_INT64(&d, "pending_leases", ni->pending);
    bson_t os;
    bson_append_document_begin(&d, "object_store", -1, &os);
    BSON_APPEND_INT64(&os, "capacity", (int64_t)ni->store.capacity);
    BSON_APPEND_INT64(&os, "used", (int64_t)ni->store.used);
    BSON_APPEND_INT64(&os, "objects", (int64_t)ni->store.objects);
    BSON_APPEND_INT64(&os, "spilled", (int64_t)ni->store.spilled);
    BSON_APPEND_INT64(&os, "spilled_bytes", (int64_t)ni->store.spilled_bytes);
    bson_append_document_end(&d, &os);
    BSON_APPEND_UTF8(&d, "topology_summary", ni->topology);
    bson_error_t err;
    bson_t *t = ni->topology_json != NULL
                    ? bson_new_from_json((const uint8_t *)ni->topology_json,
                                         -1, &err)
                    : NULL;
    bson_iter_t it;
    if (t != NULL && bson_iter_init_find(&it, t, "topology") &&
        BSON_ITER_HOLDS_DOCUMENT(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_iter_document(&it, &len, &data);
        bson_t sub;
        if (bson_init_static(&sub, data, len)) {
            BSON_APPEND_DOCUMENT(&d, "topology", &sub);
        }
    }
    if (t != NULL) {
        bson_destroy(t);
    }
    bson_append_document_end(arr, &d);
}

static void
append_pg(bson_t *arr, const char *key, const ra_pg_info_t *g)
{
    static const char *const strategies[] = {"PACK", "SPREAD", "STRICT_PACK",
                                             "STRICT_SPREAD"};
    bson_t d, b;
    bson_append_document_begin(arr, key, -1, &d);
    BSON_APPEND_INT64(&d, "id", (int64_t)g->pg.id);
    BSON_APPEND_UTF8(&d, "name", g->name);
    BSON_APPEND_UTF8(&d, "namespace", g->namespace_);
    BSON_APPEND_UTF8(&d, "state", ra_pg_state_name(g->state));
    BSON_APPEND_UTF8(&d, "strategy", (unsigned)g->strategy < 4
                                         ? strategies[g->strategy] : "?");
    BSON_APPEND_BOOL(&d, "detached", g->detached);
    bson_append_array_begin(&d, "bundles", -1, &b);
    for (size_t i = 0; i < g->nbundles; i++) {
        char k[24];
        snprintf(k, sizeof k, "%zu", i);
        bson_t e;
        bson_append_document_begin(&b, k, -1, &e);
        append_resources(&e, "resources", &g->bundles[i].need);
        BSON_APPEND_INT64(&e, "node", g->bundles[i].node);
        bson_append_document_end(&b, &e);
    }
    bson_append_array_end(&d, &b);
    bson_append_document_end(arr, &d);
}

// print_json prints doc as relaxed extended JSON; with array_key, the
// array under doc's single key, as "[elem, ...]".
static void
print_json(const bson_t *doc, bool array_key)
{
    if (!array_key) {
        char *s = bson_as_relaxed_extended_json(doc, NULL);
        printf("%s\n", s != NULL ? s : "null");
        bson_free(s);
        return;
    }
    bson_iter_t it, el;
    printf("[");
    if (bson_iter_init(&it, doc) && bson_iter_next(&it) &&
        bson_iter_recurse(&it, &el)) {
        bool first = true;
        while (bson_iter_next(&el)) {
            const uint8_t *data;
            uint32_t len;
            bson_t e;
            if (!BSON_ITER_HOLDS_DOCUMENT(&el)) {
                continue;
            }
            bson_iter_document(&el, &len, &data);
            if (!bson_init_static(&e, data, len)) {
                continue;
            }
            char *s = bson_as_relaxed_extended_json(&e, NULL);
            printf("%s%s", first ? "" : ", ", s != NULL ? s : "null");
            bson_free(s);
            first = false;
        }
    }
    printf("]\n");
}

static void
fmt_extra(const ra_resources_t *r, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    if (r->memory > 0) {
        off += (size_t)snprintf(buf + off, cap - off, "memory %.3g", r->memory);
    }
    for (size_t i = 0; i < r->ncustom && off < cap; i++) {
        off += (size_t)snprintf(buf + off, cap - off, "%s%s %g",
                                off > 0 ? ", " : "", r->custom[i].name,
                                r->custom[i].amount);
    }
}

static void
print_nodes_table(const ra_node_info_t *nodes, size_t n)
{
    printf("%-5s %-6s %-8s %-15s %-15s %-8s %-7s %s\n", "NODE", "STATE",
           "DAEMON", "CPU used/total", "GPU used/total", "WORKERS", "LEASES",
           "TOPOLOGY");
    for (size_t i = 0; i < n; i++) {
        const ra_node_info_t *ni = &nodes[i];
        char cpu[32], gpu[32];
        snprintf(cpu, sizeof cpu, "%g/%g", ni->total.cpus - ni->cpus_avail,
                 ni->total.cpus);
        snprintf(gpu, sizeof gpu, "%g/%g", ni->total.gpus - ni->gpus_avail,
                 ni->total.gpus);
        printf("%-5u %-6s %-8u %-15s %-15s %-8u %-7u %s\n", ni->node,
               ni->alive ? "ALIVE" : "DEAD", ni->proc, cpu, gpu, ni->workers,
               ni->leases, ni->topology);
    }
}

static void
print_pgs_table(const ra_pg_info_t *pgs, size_t n)
{
    static const char *const strategies[] = {"PACK", "SPREAD", "STRICT_PACK",
                                             "STRICT_SPREAD"};
    printf("%-6s %-16s %-13s %-13s %s\n", "ID", "NAME", "STATE", "STRATEGY",
           "BUNDLES (CPU,GPU@node)");
    for (size_t i = 0; i < n; i++) {
        const ra_pg_info_t *g = &pgs[i];
        printf("%-6llu %-16s %-13s %-13s", (unsigned long long)g->pg.id,
               g->name[0] != '\0' ? g->name : "-",
               ra_pg_state_name(g->state),
               (unsigned)g->strategy < 4 ? strategies[g->strategy] : "?");
        for (size_t k = 0; k < g->nbundles; k++) {
            printf(" %g,%g@%u", g->bundles[k].need.cpus,
                   g->bundles[k].need.gpus, g->bundles[k].node);
        }
        printf("\n");
    }
}

int
ra__tool_status(const char *prog, int argc, char **argv)
{
    cli_t o = {0};
    int rc = parse_common(prog, status_usage, argc, argv, &o);
    if (rc != RA_TOOL_OK) {
        return rc < 0 ? RA_TOOL_OK : rc;
    }
    if ((rc = connect_cluster(prog, &o)) != RA_TOOL_OK) {
        return rc;
    }
    ra_node_info_t *nodes = NULL;
    ra_pg_info_t *pgs = NULL;
    size_t nn = 0, np = 0;
    int e = ra_node_list(&nodes, &nn);
    if (e == 0) {
        e = ra_pg_list(&pgs, &np);
    }
    if (e != 0) {
        fprintf(stderr, "%s: cannot read the cluster's state: %s\n", prog,
                ra_strerror(e));
        ra_node_list_free(nodes, nn);
        ra_shutdown();
        return RA_TOOL_FAIL;
    }
    ra_resources_t total = {0};
    double cpus_free = 0, gpus_free = 0;
    unsigned alive = 0, pending = 0, workers = 0;
    for (size_t i = 0; i < nn; i++) {
        if (!nodes[i].alive) {
            continue;
        }
        alive++;
        (void)ra_resources_add(&total, &nodes[i].total);
        cpus_free += nodes[i].cpus_avail > 0 ? nodes[i].cpus_avail : 0;
        gpus_free += nodes[i].gpus_avail > 0 ? nodes[i].gpus_avail : 0;
        pending += nodes[i].pending;
        workers += nodes[i].workers;
    }
    unsigned pg_pending = 0, pg_created = 0;
    for (size_t i = 0; i < np; i++) {
        pg_pending += pgs[i].state == RA_PG_PENDING ||
                      pgs[i].state == RA_PG_RESCHEDULING;
        pg_created += pgs[i].state == RA_PG_CREATED;
    }
    const char *session = ra_cluster_session_dir();
    if (o.json) {
        bson_t doc = BSON_INITIALIZER, arr;
        BSON_APPEND_UTF8(&doc, "session", session != NULL ? session : "");
        BSON_APPEND_INT64(&doc, "nodes_alive", alive);
        append_resources(&doc, "total", &total);
        bson_t av;
        bson_append_document_begin(&doc, "available", -1, &av);
        BSON_APPEND_DOUBLE(&av, "CPU", cpus_free);
        BSON_APPEND_DOUBLE(&av, "GPU", gpus_free);
        bson_append_document_end(&doc, &av);
        BSON_APPEND_INT64(&doc, "workers", workers);
        BSON_APPEND_INT64(&doc, "pending_leases", pending);
        BSON_APPEND_INT64(&doc, "placement_groups_pending", pg_pending);
        BSON_APPEND_INT64(&doc, "placement_groups_created", pg_created);
        bson_append_array_begin(&doc, "nodes", -1, &arr);
        for (size_t i = 0; i < nn; i++) {
            char k[24];
            snprintf(k, sizeof k, "%zu", i);
            append_node(&arr, k, &nodes[i]);
        }
        bson_append_array_end(&doc, &arr);
        print_json(&doc, false);
        bson_destroy(&doc);
    } else {
        printf("Cluster %s\n", session != NULL ? session : "");
        printf("Nodes: %u alive of %zu\n", alive, nn);
        for (size_t i = 0; i < nn; i++) {
            const ra_node_info_t *ni = &nodes[i];
            char extra[512];
            fmt_extra(&ni->total, extra, sizeof extra);
            printf("  node %u (daemon %u) %s: CPU %g/%g used, GPU %g/%g "
                   "used, %u workers, %u leases\n", ni->node, ni->proc,
                   ni->alive ? "ALIVE" : "DEAD",
                   ni->total.cpus - ni->cpus_avail, ni->total.cpus,
                   ni->total.gpus - ni->gpus_avail, ni->total.gpus,
                   ni->workers, ni->leases);
            printf("    topology: %s\n", ni->topology[0] != '\0'
                                             ? ni->topology : "unknown");
            if (ni->store.capacity != 0) {
                printf("    object store: %.1f/%.1f MiB used, %llu "
                       "objects (%llu spilled, %.1f MiB)\n",
                       (double)ni->store.used / 1048576.0,
                       (double)ni->store.capacity / 1048576.0,
                       (unsigned long long)ni->store.objects,
                       (unsigned long long)ni->store.spilled,
                       (double)ni->store.spilled_bytes / 1048576.0);
            }
            if (extra[0] != '\0') {
                printf("    other resources: %s\n", extra);
            }
        }
        printf("Resources: CPU %g/%g used, GPU %g/%g used\n",
               total.cpus - cpus_free, total.cpus, total.gpus - gpus_free,
               total.gpus);
        printf("Demand: %u lease requests waiting, %u placement groups "
               "pending (%u created)\n", pending, pg_pending, pg_created);
    }
    ra_node_list_free(nodes, nn);
    ra_pg_list_free(pgs, np);
    ra_shutdown();
    return RA_TOOL_OK;
}

// list_actors_into appends each actor to arr and, for a table, prints
// it.  Returns 0 or the error of ra_actor_list.
static int
list_actors_into(bson_t *arr, bool json)
{
    ra_actor_info_t *as = NULL;
    size_t n = 0;
    int e = ra_actor_list(&as, &n);
    if (e != 0) {
        return e;
    }
    if (!json) {
        printf("%-14s %-10s %-16s %-16s %-11s %-8s %-4s %-3s %s\n", "ID",
               "STATE", "CLASS", "NAME", "NODE", "PID", "JOB", "RST",
               "REASON");
    }
    for (size_t i = 0; i < n; i++) {
        const ra_actor_info_t *a = &as[i];
        char k[24], id[48];
        snprintf(k, sizeof k, "%zu", i);
        snprintf(id, sizeof id, "%u.%u.%llu", a->owner_node, a->owner_proc,
                 (unsigned long long)a->id);
        bson_t d;
        bson_append_document_begin(arr, k, -1, &d);
        BSON_APPEND_UTF8(&d, "id", id);
        BSON_APPEND_UTF8(&d, "state", ra_actor_state_name(a->state));
        BSON_APPEND_UTF8(&d, "class", a->cls);
        BSON_APPEND_UTF8(&d, "name", a->name);
        BSON_APPEND_UTF8(&d, "namespace", a->namespace_);
        BSON_APPEND_INT64(&d, "job", (int64_t)a->job);
        BSON_APPEND_INT64(&d, "node", a->node);
        BSON_APPEND_INT64(&d, "pid", a->proc);
        BSON_APPEND_INT64(&d, "restarts", a->restarts);
        BSON_APPEND_BOOL(&d, "detached", a->detached);
        BSON_APPEND_INT64(&d, "start_ms", a->start_ms);
        BSON_APPEND_INT64(&d, "end_ms", a->end_ms);
        BSON_APPEND_UTF8(&d, "reason", a->reason);
        bson_append_document_end(arr, &d);
        if (!json) {
            printf("%-14s %-10s %-16.16s %-16.16s %-11u %-8u %-4llu %-3u "
                   "%s\n", id, ra_actor_state_name(a->state), a->cls,
                   a->name[0] != '\0' ? a->name : "-", a->node, a->proc,
                   (unsigned long long)a->job, a->restarts,
                   a->reason[0] != '\0' ? a->reason : "-");
        }
    }
    free(as);
    return 0;
}

// list_tasks_into appends the newest limit tasks to arr and, for a
// table, prints them.  Returns 0 or the error of ra_task_list.
static int
list_tasks_into(bson_t *arr, bool json, long limit)
{
    ra_task_info_t *ts = NULL;
    size_t n = 0;
    int e = ra_task_list((size_t)limit, &ts, &n);
    if (e != 0) {
        return e;
    }
    if (!json) {
        printf("%-20s %-9s %-20s %-16s %-3s %-11s %-8s %-4s %s\n", "ID",
               "STATE", "FUNCTION", "NAME", "TRY", "NODE", "PID", "JOB",
               "ERROR");
    }
    for (size_t i = 0; i < n; i++) {
        const ra_task_info_t *t = &ts[i];
        char k[24], id[48];
        snprintf(k, sizeof k, "%zu", i);
        snprintf(id, sizeof id, "%u.%u.%llu", t->owner_node, t->owner_proc,
                 (unsigned long long)t->id);
        bson_t d;
        bson_append_document_begin(arr, k, -1, &d);
        BSON_APPEND_UTF8(&d, "id", id);
        BSON_APPEND_UTF8(&d, "state", ra_task_status_name(t->state));
        BSON_APPEND_UTF8(&d, "function", t->func);
        BSON_APPEND_UTF8(&d, "name", t->name);
        BSON_APPEND_INT64(&d, "attempt", t->attempt);
        BSON_APPEND_INT64(&d, "job", (int64_t)t->job);
        BSON_APPEND_INT64(&d, "node", t->node);
        BSON_APPEND_INT64(&d, "pid", t->proc);
        BSON_APPEND_INT64(&d, "submit_ms", t->submit_ms);
        BSON_APPEND_INT64(&d, "start_ms", t->start_ms);
        BSON_APPEND_INT64(&d, "end_ms", t->end_ms);
        BSON_APPEND_UTF8(&d, "error", t->error);
        bson_append_document_end(arr, &d);
        if (!json) {
            printf("%-20s %-9s %-20.20s %-16.16s %-3u %-11u %-8u %-4llu "
                   "%s\n", id, ra_task_status_name(t->state),
                   t->func[0] != '\0' ? t->func : "-",
                   t->name[0] != '\0' ? t->name : "-", t->attempt, t->node,
                   t->proc, (unsigned long long)t->job,
                   t->error[0] != '\0' ? t->error : "-");
        }
    }
    free(ts);
    return 0;
}

static int
list_what(const char *prog, const char *what, int argc, char **argv)
{
    cli_t o = {.limit = -1};
    int rc = parse_common(prog, list_usage, argc, argv, &o);
    if (rc != RA_TOOL_OK) {
        return rc < 0 ? RA_TOOL_OK : rc;
    }
    if (o.limit >= 0 && strcmp(what, "tasks") != 0) {
        return ra__tool_usage_error(prog, "option '--limit' is for rayo "
                                    "list tasks");
    }
    if ((rc = connect_cluster(prog, &o)) != RA_TOOL_OK) {
        return rc;
    }
    bson_t doc = BSON_INITIALIZER, arr;
    bson_append_array_begin(&doc, "list", -1, &arr);
    int e;
    if (strcmp(what, "jobs") == 0) {
        e = ra__tool_print_jobs(o.json);
    } else if (strcmp(what, "actors") == 0) {
        e = list_actors_into(&arr, o.json);
    } else if (strcmp(what, "tasks") == 0) {
        e = list_tasks_into(&arr, o.json, o.limit >= 0 ? o.limit : 100);
    } else if (strcmp(what, "workers") == 0) {
        ra_worker_info_t *ws = NULL;
        size_t n = 0;
        if ((e = ra_worker_list(&ws, &n)) == 0) {
            if (!o.json) {
                printf("%-11s %-8s %-9s %-7s %-10s %-8s %s\n", "NODE", "PID",
                       "STATE", "ACTORS", "DRIVER", "IDLE_MS", "GPUS");
            }
            for (size_t i = 0; i < n; i++) {
                const ra_worker_info_t *w = &ws[i];
                char k[24];
                snprintf(k, sizeof k, "%zu", i);
                bson_t d;
                bson_append_document_begin(&arr, k, -1, &d);
                BSON_APPEND_INT64(&d, "node", w->node);
                BSON_APPEND_INT64(&d, "pid", w->pid);
                BSON_APPEND_UTF8(&d, "state", w->state);
                BSON_APPEND_INT64(&d, "actors", w->actors);
                BSON_APPEND_BOOL(&d, "dedicated", w->dedicated);
                BSON_APPEND_INT64(&d, "driver_pid", w->driver_pid);
                BSON_APPEND_UTF8(&d, "gpus", w->gpus);
                BSON_APPEND_INT64(&d, "idle_ms", w->idle_ms);
                bson_append_document_end(&arr, &d);
                if (!o.json) {
                    printf("%-11u %-8lld %-9s %-7u %-10lld %-8lld %s\n",
                           w->node, (long long)w->pid, w->state, w->actors,
                           (long long)w->driver_pid, (long long)w->idle_ms,
                           w->gpus[0] != '\0' ? w->gpus : "-");
                }
            }
            free(ws);
        }
    } else if (strcmp(what, "nodes") == 0) {
        ra_node_info_t *nodes = NULL;
        size_t n = 0;
        if ((e = ra_node_list(&nodes, &n)) == 0) {
            for (size_t i = 0; i < n; i++) {
                char k[24];
                snprintf(k, sizeof k, "%zu", i);
                append_node(&arr, k, &nodes[i]);
            }
            if (!o.json) {
                print_nodes_table(nodes, n);
            }
            ra_node_list_free(nodes, n);
        }
    } else {
        ra_pg_info_t *pgs = NULL;
        size_t n = 0;
        if ((e = ra_pg_list(&pgs, &n)) == 0) {
            for (size_t i = 0; i < n; i++) {
                char k[24];
                snprintf(k, sizeof k, "%zu", i);
                append_pg(&arr, k, &pgs[i]);
            }
            if (!o.json) {
                print_pgs_table(pgs, n);
            }
            ra_pg_list_free(pgs, n);
        }
    }
    bson_append_array_end(&doc, &arr);
    if (e == 0 && o.json && strcmp(what, "jobs") != 0) {
        print_json(&doc, true);
    }
    bson_destroy(&doc);
    ra_shutdown();
    if (e != 0) {
        fprintf(stderr, "%s: cannot read the cluster's %s: %s\n", prog, what,
                ra_strerror(e));
        return RA_TOOL_FAIL;
    }
    return RA_TOOL_OK;
}

static int
list_nodes(const char *prog, int argc, char **argv)
{
    return list_what(prog, "nodes", argc, argv);
}

static int
list_pgs(const char *prog, int argc, char **argv)
{
    return list_what(prog, "placement-groups", argc, argv);
}

int
ra__tool_list_jobs(const char *prog, int argc, char **argv)
{
    return list_what(prog, "jobs", argc, argv);
}

static int
list_workers(const char *prog, int argc, char **argv)
{
    return list_what(prog, "workers", argc, argv);
}

static int
list_actors(const char *prog, int argc, char **argv)
{
    return list_what(prog, "actors", argc, argv);
}

static int
list_tasks(const char *prog, int argc, char **argv)
{
    return list_what(prog, "tasks", argc, argv);
}

static const ra_tool_cmd_t list_cmds[] = {
    {"actors", list_actors,
     "actors: state, class, name, node, restarts, why dead"},
    {"tasks", list_tasks,
     "tasks: state, function, attempt, where they ran, error"},
    {"workers", list_workers,
     "worker processes: node, state, actors, job, GPUs"},
    {"jobs", ra__tool_list_jobs,
     "jobs: state, driver, submission, entry point"},
    {"nodes", list_nodes, "nodes: state, resources, workers, topology"},
    {"placement-groups", list_pgs,
     "placement groups: state, strategy, bundles"},
};

int
ra__tool_list(const char *prog, int argc, char **argv)
{
    return ra__tool_dispatch(prog,
                             "Usage: rayo list WHAT [OPTIONS]\n"
                             "List what a running cluster holds (--format "
                             "table|json, --address, --temp-dir).\n",
                             list_cmds, sizeof list_cmds / sizeof list_cmds[0],
                             argc, argv);
}
