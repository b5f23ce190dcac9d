// api.c - the C API of ra_api.h on top of the cluster's system actors.
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <sys/random.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core_impl.h"
#include "ra_objstore.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"
#include "ra_supervisor.h"

// Global: the process's cluster state; written by ra_init and ra_shutdown
// under init_mu, read without a lock in between (see ra_api.h: the
// cluster is process-wide).
ra__cluster_t *ra__g;
static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static ra__cluster_t g_state;
static double cpus_total, gpus_total;

struct ra_value {
    uint8_t kind;
    ra_msg_t *msg;
    const void *data;
    size_t len;
    char *text;
    ra_objstore_t *store;     // a pinned view into it, when not NULL
    ra_objstore_view_t view;
    ra_msg_t *nest;           // the references it contains (NULL: none)
};

// Default size of an embedded cluster's object store.
#define STORE_DEFAULT ((size_t)256 << 20)
// How long ra_get looks for a result, yielding the CPU, before it sleeps
// (see spin_wait): at most this many turns and microseconds.
#define GET_SPIN_TURNS 100
#define GET_SPIN_US 200

// ---- starting and stopping ----

// log_from_env sends the library's log to stderr when RAYO_LOG names a
// level (error, warning, info, debug), in drivers and workers alike.
void
ra__log_from_env(void)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"error", RA_LOG_ERR},
                  {"warning", RA_LOG_WARNING},
                  {"info", RA_LOG_INFO},
                  {"debug", RA_LOG_DEBUG}};
    const char *v = getenv("RAYO_LOG");
    for (size_t i = 0; v != NULL && i < sizeof levels / sizeof levels[0];
         i++) {
        if (strcmp(v, levels[i].name) == 0) {
            ra_log_set_level(levels[i].level);
            ra_log_set_sink(ra_log_stderr, NULL);
        }
    }
}

// load_libs dlopens the runtime environment's libraries: the list, then
// RAYO_LIBS.  Their constructors register their functions and classes.
// Returns 0 or RA_ENOENT; *joined receives them ':'-separated for the
// workers (caller frees; NULL when there are none).
int
ra__load_libs(const char *const *libs, char **joined)
{
    size_t cap = 1;
    char *all = NULL;
    const char *env = getenv("RAYO_LIBS");
    for (size_t i = 0; libs != NULL && libs[i] != NULL; i++) {
        cap += strlen(libs[i]) + 1;
    }
    cap += env != NULL ? strlen(env) + 1 : 0;
    if ((all = calloc(1, cap)) == NULL) {
        return RA_ENOMEM;
    }
    for (size_t i = 0; libs != NULL && libs[i] != NULL; i++) {
        if (strchr(libs[i], ':') != NULL) {
            ra_log_err("api", "library path %s contains ':'", libs[i]);
            free(all);
            return RA_EINVAL;
        }
        strcat(all, all[0] != '\0' ? ":" : "");
        strcat(all, libs[i]);
    }
    if (env != NULL && env[0] != '\0') {
        strcat(all, all[0] != '\0' ? ":" : "");
        strcat(all, env);
    }
    char *copy = strdup(all);
    if (copy == NULL) {
        free(all);
        return RA_ENOMEM;
    }
    int rc = 0;
    char *save = NULL;
    for (char *p = strtok_r(copy, ":", &save); p != NULL && rc == 0;
         p = strtok_r(NULL, ":", &save)) {
        if (dlopen(p, RTLD_NOW | RTLD_GLOBAL) == NULL) {
            ra_log_err("api", "cannot load %s: %s", p, dlerror());
            rc = RA_ENOENT;
        }
    }
    free(copy);
    if (rc != 0 || all[0] == '\0' || joined == NULL) {
        free(all);
        all = NULL;
    }
    if (joined != NULL) {
        *joined = all;
    }
    return rc;
}

int
ra_worker_main(void)
{
    const char *w = getenv("RAYO_WORKER");
    if (w != NULL && strcmp(w, "1") == 0) {
        // The raylet starts its workers through a fork server: the first
        // copy of the program serves here, and each worker it forks goes on.
        bool forked = ra_fork_server_main() == 1;
        ra__log_from_env();
        ra__worker_run(forked);
    }
    return 0;
}

static int
mkdir_p(const char *path)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    (void)remove(path);
    return 0;
}

static void
rm_rf(const char *path)
{
    if (path[0] != '\0') {
        (void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static int
call_raylet_info(ra__cluster_t *c, ra_ctx_t *scope, ra_pid_t raylet,
                 ra_msg_t **rep)
{
    ra_msg_t *m = NULL;
    int rc = ra_msg_new_bytes(&m, RA__T_RAYLET_INFO, NULL, 0);
    if (rc == 0) {
        rc = ra__call_kept(c, scope, raylet, m, 10000, RA__KEPT_BACK_MS,
                           rep);
        ra_msg_unref(&m);
    }
    return rc;
}

// job_end tells the node daemon's raylet that this driver's job ends:
// its workers are stopped now rather than when the link is seen lost.
static void
job_end(ra__cluster_t *c)
{
    ra_ctx_t *scope = NULL;
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL, *rep = NULL;
    if (c->job_id != 0 && ra__g == c) {
        ra__wb_u8(&b, RA__GCS_JOB_END);
        ra__wb_u64(&b, c->job_id);
        ra__wb_u8(&b, RA_JOB_SUCCEEDED);
        ra__wb_str(&b, "the driver ended");
        if (ra__gcs_call(NULL, &b, 5000, &rep) == 0) {
            ra_msg_unref(&rep);
        }
        b = (ra__wbuf_t){0};
    }
    ra__wb_u8(&b, RA__JOB_END);
    ra__wb_u32(&b, c->env);
    if (ra_scope_new(c->rt, &scope) == 0 &&
        ra__wb_msg(&b, RA__T_JOB, &m) == 0) {
        (void)ra__call_kept(c, scope, c->raylet, m, 5000,
                            RA__KEPT_BACK_MS, &rep);
        ra_msg_unref(&m);
        ra_msg_unref(&rep);
    } else {
        ra__wb_free(&b);
    }
    ra_scope_destroy(&scope);
}

// stop_sup stops a supervisor of this process (its children first) and
// waits until it has ended.
static void
stop_sup(ra_runtime_t *rt, ra_pid_t sup)
{
    ra_ctx_t *scope = NULL;
    if (ra_scope_new(rt, &scope) == 0) {
        (void)ra_sup_stop(scope, sup);
        ra_scope_destroy(&scope);
    }
}

static void
stop_all(ra__cluster_t *c)
{
    if (c->rt != NULL && c->joined) {
        // Its last task events go to the GCS before it hears of the end.
        (void)ra__core_flush_events(c, 2000);
    }
    c->stopping = true;
    if (c->rt != NULL && c->joined) {
        if (c->env != 0 || c->job_id != 0) {
            job_end(c);
        }
    } else if (c->rt != NULL && !ra_pid_is_nil(c->raylet_sup)) {
        // Its supervisor stops the raylet (not to be restarted), whose end
        // stops its worker supervisor, which stops the workers (SIGTERM,
        // then SIGKILL after a second).
        stop_sup(c->rt, c->raylet_sup);
    }
    if (c->rt != NULL && !c->joined && !ra_pid_is_nil(c->objmgr_sup)) {
        // It uses the link and the store, which end next; its supervisor
        // stops it (not to be restarted).
        stop_sup(c->rt, c->objmgr_sup);
    }
    ra_link_t *l = c->link;
    ra_link_stop(&l);
    c->link = NULL;
    ra_runtime_destroy(&c->rt);
    ra__gcs_sys_free(&c->gcs_sys);
    ra__raylet_sys_free(&c->raylet_sys);
    ra__objmgr_sys_free(&c->objmgr_sys);
    ra__core_free(c);
    free(c->job_wire);
    c->job_wire = NULL;
    ra_topo_destroy(&c->topo);
    ra_objstore_t *st = c->store;
    if (c->joined) {
        ra_objstore_close(&st);
    } else {
        ra_objstore_destroy(&st);
    }
    c->store = NULL;
    if (c->daemon) {
        // Logs and tables stay for a post-mortem; without its node file
        // the session reads as stopped.
        char path[700];
        ra_cluster_forget(c->session);
        snprintf(path, sizeof path, "%s/sock", c->session);
        rm_rf(path);
    } else if (!c->joined) {
        rm_rf(c->session);
    }
}

// env_or returns v, else the environment variable name when set and not
// empty, else NULL.
static const char *
env_or(const char *v, const char *name)
{
    if (v != NULL) {
        return v;
    }
    const char *e = getenv(name);
    return e != NULL && e[0] != '\0' ? e : NULL;
}

// env_off tells whether variable name turns something off ("0").
static bool
env_off(const char *name)
{
    const char *e = getenv(name);
    return e != NULL && strcmp(e, "0") == 0;
}

// node_resources takes the node's memory and custom resources from the
// options, else from RAYO_RESOURCES (a JSON object of names and amounts).
static int
node_resources(const ra_init_opts_t *o, ra_resources_t *out)
{
    memset(out, 0, sizeof *out);
    const ra_resources_t *r = &o->resources;
    if (r->memory != 0 || r->ncustom != 0 || r->cpus != 0 || r->gpus != 0) {
        if (r->cpus != 0 || r->gpus != 0 ||
            ra_resources_add(out, r) != 0) {
            ra_log_err("api", "ra_init_opts_t.resources: memory and custom "
                       "resources only, none negative (CPUs and GPUs go in "
                       "num_cpus and num_gpus)");
            return RA_EINVAL;
        }
        return 0;
    }
    const char *json = getenv("RAYO_RESOURCES");
    if (json == NULL || json[0] == '\0') {
        return 0;
    }
    bson_error_t err;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &err);
    bson_iter_t it;
    int rc = doc != NULL && bson_iter_init(&it, doc) ? 0 : RA_EINVAL;
    while (rc == 0 && bson_iter_next(&it)) {
        const char *name = bson_iter_key(&it);
        double v = BSON_ITER_HOLDS_NUMBER(&it) ? bson_iter_as_double(&it)
                                               : -1;
        if (strcmp(name, "CPU") == 0 || strcmp(name, "GPU") == 0 ||
            ra_resources_set(out, name, v) != 0) {
            rc = RA_EINVAL;
        }
    }
    if (rc != 0) {
        ra_log_err("api", "RAYO_RESOURCES must be a JSON object of resource "
                   "names and non-negative amounts (not CPU or GPU), such "
                   "as '{\"ssd\": 2}'; got '%s'", json);
    }
    if (doc != NULL) {
        bson_destroy(doc);
    }
    return rc;
}

// load_topology loads the node's topology as the options and environment
// say.  GPUs are probed through the CUDA driver only when the program did
// not say how many the node has.
static int
load_topology(const ra_init_opts_t *o, ra_topo_t **out)
{
    ra_topo_opts_t to = {
        .synthetic = o->topology_synthetic,
        .xml_path = o->topology_xml,
        .gpu_file = env_or(o->gpu_file, "RAYO_GPU_FILE"),
        .no_cuda = o->num_gpus > 0,
    };
    // The program's choice of machine wins over the environment's.
    if (to.synthetic == NULL && to.xml_path == NULL) {
        to.synthetic = env_or(NULL, "RAYO_TOPOLOGY_SYNTHETIC");
        to.xml_path = env_or(NULL, "RAYO_TOPOLOGY_XML");
    }
    int rc = ra_topo_load(out, &to);
    if (rc != 0) {
        ra_log_err("api", "cannot load the node's topology (%s%s%s): %s; "
                   "check the topology options or RAYO_TOPOLOGY_SYNTHETIC, "
                   "RAYO_TOPOLOGY_XML and RAYO_GPU_FILE",
                   to.synthetic != NULL ? to.synthetic
                   : to.xml_path != NULL ? to.xml_path : "this machine",
                   to.gpu_file != NULL ? ", GPUs from " : "",
                   to.gpu_file != NULL ? to.gpu_file : "", ra_strerror(rc));
    }
    return rc;
}

int
ra_init(const char *address)
{
    ra_init_opts_t o = {.address = address};
    return ra_init_opts(&o);
}

// start_rt_link makes this process's runtime, its GCS when gcsdir names
// the tables, and its link layer, bound to bind or to its default ipc name
// in sock.  A node daemon's link (daemon) leaves its I/O threads where the
// kernel puts them: its object manager's transfers want both CPUs of a
// small node (ra_link_opts_t.io_free).
static int
start_rt_link(ra__cluster_t *c, const char *sock, unsigned threads,
              const char *bind, const char *gcsdir, bool daemon)
{
    ra_runtime_opts_t ro = {.node = c->node, .proc = c->proc,
                            .threads = threads,
                            .spin = ra__cluster_spin()};
    int rc = ra_runtime_new(&c->rt, &ro);
    if (rc != 0) {
        return rc;
    }
    // The GCS comes before the link: nothing sent to it from outside
    // (a node registering with a head just started) can find it missing.
    if (gcsdir != NULL && (rc = ra__gcs_start(c->rt, gcsdir, &c->gcs_sys,
                                              &c->gcs, &c->gcs_sup)) != 0) {
        return rc;
    }
    ra_link_opts_t lo = {.ipc_dir = sock, .idle_ms = UINT32_MAX,
                         .bind = bind,
                         .cert = c->cert[0] != '\0' ? c->cert : NULL,
                         .io_free = daemon};
    ra__link_env_opts(&lo);
    ra_link_t *l = NULL;
    if ((rc = ra_link_start(c->rt, &lo, &l)) == 0) {
        c->link = l;
    }
    return rc;
}

// sweep_stale_stores removes the object stores (and half-made ones) that
// clusters of this user left in /dev/shm when their process died without
// stopping (kill -9): their names say which process made them.
static void
sweep_stale_stores(void)
{
    DIR *d = opendir("/dev/shm");
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    unsigned n = 0;
    while ((e = readdir(d)) != NULL) {
        int pid = 0;
        long stamp = 0;
        char path[300];
        struct stat st;
        if (sscanf(e->d_name, "rayo-%d-%ld", &pid, &stamp) != 2 || pid <= 0) {
            continue;
        }
        snprintf(path, sizeof path, "/dev/shm/%.250s", e->d_name);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
            st.st_uid != geteuid() || ra__proc_alive(pid)) {
            continue;
        }
        if (unlink(path) == 0) {
            n++;
        }
    }
    closedir(d);
    if (n > 0) {
        ra_log_info("api", "removed %u object stores left in /dev/shm by "
                    "processes that died", n);
    }
}

static int start_local(ra_init_opts_t o, bool daemon);
// ---- node daemons: the session's node file, joining, ra_node_run ----
//
// A node daemon (ra_node_run, `rayo start`) writes SESSION/node.info, and
// the path of its session to TEMP/current (TEMP: the temp directory), so
// that drivers on this machine find it ("auto").  node.info is text, one
// "key value" line each: version, pid (the daemon's OS process), node,
// proc, gcs and raylet (pids as n.p.i.g), store (the object store's name,
// "-" for none).

#define NODE_INFO_VERSION 1

static int
write_file_atomic(const char *path, const char *text)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int rc = w == (ssize_t)len && fsync(fd) == 0 ? 0 : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlink(tmp);
    }
    return rc;
}

void
ra_cluster_forget(const char *session)
{
    char path[700], line[512], store[300], cur[700], named[700] = "";
    if (session == NULL || session[0] == '\0') {
        return;
    }
    snprintf(path, sizeof path, "%s/node.info", session);
    // Its object store stays in /dev/shm unless removed here.
    FILE *nf = fopen(path, "re");
    while (nf != NULL && fgets(line, sizeof line, nf) != NULL) {
        if (sscanf(line, "store %255s", store) == 1 &&
            strncmp(store, "rayo-", 5) == 0 && strchr(store, '/') == NULL) {
            char sp[320];
            snprintf(sp, sizeof sp, "/dev/shm/%s", store);
            (void)unlink(sp);
        }
    }
    if (nf != NULL) {
        fclose(nf);
    }
    (void)unlink(path);
    // TEMP/current names the newest daemon: forget it if it is this one.
    const char *slash = strrchr(session, '/');
    if (slash == NULL) {
        return;
    }
    snprintf(cur, sizeof cur, "%.*s/current", (int)(slash - session),
             session);
    FILE *f = fopen(cur, "re");
    if (f != NULL) {
        if (fgets(named, sizeof named, f) != NULL) {
            named[strcspn(named, "\n")] = '\0';
        }
        fclose(f);
    }
    if (strcmp(named, session) == 0) {
        (void)unlink(cur);
    }
}

const char *
ra_cluster_temp_dir(const char *t)
{
    if (t == NULL || t[0] == '\0') {
        t = getenv("RAYO_TEMP_DIR");
    }
    return t != NULL && t[0] != '\0' ? t : "/tmp/rayo";
}

static int
write_node_info(const ra__cluster_t *c, const char *store)
{
    char text[3000], path[1100];
    int n = snprintf(text, sizeof text,
             "version %d\npid %d\nnode %u\nproc %u\ngcs %u.%u.%u.%u\n"
             "raylet %u.%u.%u.%u\nstore %s\n",
             NODE_INFO_VERSION, (int)getpid(), c->node, c->proc, c->gcs.node,
             c->gcs.proc, c->gcs.id, c->gcs.gen, c->raylet.node,
             c->raylet.proc, c->raylet.id, c->raylet.gen,
             store[0] != '\0' ? store : "-");
    if (c->ip[0] != '\0' && n > 0 && (size_t)n < sizeof text) {
        snprintf(text + n, sizeof text - (size_t)n,
                 "ip %s\nendpoint %s\ngcs_endpoint %s\ncert %s\n", c->ip,
                 ra_link_endpoint(c->link), c->gcs_ep, c->cert);
    }
    snprintf(path, sizeof path, "%s/node.info", c->session);
    int rc = write_file_atomic(path, text);
    if (rc == 0) {
        // The session is TEMP/session-...: TEMP/current names it.
        char temp[600];
        snprintf(temp, sizeof temp, "%s", c->session);
        char *slash = strrchr(temp, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(path, sizeof path, "%s/current", temp);
            snprintf(text, sizeof text, "%s\n", c->session);
            rc = write_file_atomic(path, text);
        }
    }
    if (rc != 0) {
        ra_log_err("api", "cannot write the node file of %s: %s", c->session,
                   ra_strerror(rc));
    }
    return rc;
}

typedef struct node_info {
    int pid;
    uint32_t node, proc;
    ra_pid_t gcs, raylet;
    char store[200];
    char ip[64];              // several nodes: this node's address, ...
    char endpoint[256];       // ... the daemon's endpoint,
    char gcs_ep[256];         // the GCS's,
    char cert[512];           // and the cluster certificate
} node_info_t;

// copy_field copies a value of the node file; one too long sets *bad.
static void
copy_field(char *dst, size_t cap, const char *val, bool *bad)
{
    size_t n = strlen(val);
    if (n >= cap) {
        *bad = true;
        n = 0;
    }
    memcpy(dst, val, n);
    dst[n] = '\0';
}

static int
read_node_info(const char *session, node_info_t *ni)
{
    bool bad = false;
    char path[1100], line[1024], key[32], val[600];
    snprintf(path, sizeof path, "%s/node.info", session);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return -errno;
    }
    memset(ni, 0, sizeof *ni);
    int version = 0, seen = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "%31s %599s", key, val) != 2) {
            continue;
        }
        ra_pid_t *pp = strcmp(key, "gcs") == 0      ? &ni->gcs
                       : strcmp(key, "raylet") == 0 ? &ni->raylet
                                                    : NULL;
        if (pp != NULL) {
            unsigned a, b, cc, d;
            if (sscanf(val, "%u.%u.%u.%u", &a, &b, &cc, &d) == 4) {
                *pp = (ra_pid_t){a, b, cc, d};
                seen++;
            }
        } else if (strcmp(key, "version") == 0) {
            version = atoi(val);
        } else if (strcmp(key, "pid") == 0) {
            ni->pid = atoi(val);
            seen++;
        } else if (strcmp(key, "node") == 0) {
            ni->node = (uint32_t)strtoul(val, NULL, 10);
            seen++;
        } else if (strcmp(key, "proc") == 0) {
            ni->proc = (uint32_t)strtoul(val, NULL, 10);
            seen++;
        } else if (strcmp(key, "ip") == 0) {
            copy_field(ni->ip, sizeof ni->ip, val, &bad);
        } else if (strcmp(key, "endpoint") == 0) {
            copy_field(ni->endpoint, sizeof ni->endpoint, val, &bad);
        } else if (strcmp(key, "gcs_endpoint") == 0) {
            copy_field(ni->gcs_ep, sizeof ni->gcs_ep, val, &bad);
        } else if (strcmp(key, "cert") == 0) {
            copy_field(ni->cert, sizeof ni->cert, val, &bad);
        } else if (strcmp(key, "store") == 0) {
            copy_field(ni->store, sizeof ni->store,
                       strcmp(val, "-") == 0 ? "" : val, &bad);
        }
    }
    fclose(f);
    if (version != NODE_INFO_VERSION || seen != 5 || ni->pid <= 0 || bad) {
        ra_log_err("api", "%s is not a complete node file of this rayo "
                   "version (version %d, expected %d)", path, version,
                   NODE_INFO_VERSION);
        return RA_EBADMSG;
    }
    return 0;
}

bool
ra__proc_alive(int pid)
{
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH)) {
        return false;
    }
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp == NULL || rp[1] == '\0' || rp[2] != 'Z';
}

int
ra_cluster_locate(const char *address, const char *temp_dir, char *session,
                  size_t cap, int *daemon_pid)
{
    if (session == NULL || cap == 0) {
        return RA_EINVAL;
    }
    session[0] = '\0';
    if (address == NULL || address[0] == '\0') {
        address = "auto";
    }
    char dir[600];
    if (strcmp(address, "auto") == 0) {
        char path[700];
        snprintf(path, sizeof path, "%s/current", ra_cluster_temp_dir(temp_dir));
        FILE *f = fopen(path, "re");
        if (f == NULL) {
            return RA_ENOENT;
        }
        char *got = fgets(dir, sizeof dir, f);
        fclose(f);
        if (got == NULL) {
            return RA_ENOENT;
        }
        dir[strcspn(dir, "\n")] = '\0';
    } else if (address[0] == '/') {
        snprintf(dir, sizeof dir, "%s", address);
    } else {
        return RA_ENOTSUP;
    }
    if (strlen(dir) >= cap || strlen(dir) >= sizeof ((ra__cluster_t *)0)->session - 16) {
        return RA_EINVAL;
    }
    snprintf(session, cap, "%s", dir);
    node_info_t ni;
    int rc = read_node_info(dir, &ni);
    if (rc == -ENOENT) {
        return RA_ENOCONN;   // a session whose daemon stopped
    }
    if (rc != 0) {
        return rc;
    }
    if (daemon_pid != NULL) {
        *daemon_pid = ni.pid;
    }
    // A daemon killed without cleaning up leaves its file behind (and
    // may stay a zombie until someone reaps it).
    return ra__proc_alive(ni.pid) ? 0 : RA_ENOCONN;
}

// job_register tells the raylet how to start this driver's workers.
static int
job_register(ra__cluster_t *c, ra_ctx_t *scope, unsigned workers)
{
    char **argv = ra__read_cmdline();
    char **env = ra__copy_environ();
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL) {
        cwd[0] = '\0';
    }
    int rc = argv != NULL && env != NULL ? 0 : RA_ENOMEM;
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__JOB_REGISTER);
    ra__wb_pid(&b, c->core);
    ra__wb_u64(&b, (uint64_t)getpid());
    for (int v = 0; rc == 0 && v < 2; v++) {
        char **s = v == 0 ? argv : env;
        uint32_t n = 0;
        while (s[n] != NULL) {
            n++;
        }
        ra__wb_u32(&b, n);
        for (uint32_t i = 0; i < n; i++) {
            ra__wb_str(&b, s[i]);
        }
    }
    ra__wb_str(&b, cwd);
    ra__wb_u32(&b, workers);
    ra__free_strv(argv);
    ra__free_strv(env);
    // Kept for the raylets of other nodes that this job's work spills
    // to, which start its workers when first asked (0 at once).
    if (rc == 0 && b.err == 0 && b.len >= 4 &&
        (c->job_wire = malloc(b.len)) != NULL) {
        memcpy(c->job_wire, b.p, b.len);
        memset(c->job_wire + b.len - 4, 0, 4);
        c->job_wire_len = b.len;
    }
    ra_msg_t *m = NULL, *rep = NULL;
    ra__rbuf_t r;
    if (rc == 0 && (rc = ra__wb_msg(&b, RA__T_JOB, &m)) == 0) {
        rc = ra__call_status(scope, c->raylet, &m, 10000, &rep, &r);
    } else {
        ra__wb_free(&b);
    }
    if (rc != 0) {
        return rc;
    }
    c->env = ra__rb_u32(&r);
    ra_msg_unref(&rep);
    return r.bad ? RA_EBADMSG : 0;
}

// job_add records this driver as a job in the GCS.
static int
job_add(ra__cluster_t *c, ra_ctx_t *scope)
{
    char **argv = ra__read_cmdline();
    char entry[1024] = "";
    size_t off = 0;
    for (size_t i = 0; argv != NULL && argv[i] != NULL && off < sizeof entry;
         i++) {
        off += (size_t)snprintf(entry + off, sizeof entry - off, "%s%s",
                                i > 0 ? " " : "", argv[i]);
    }
    ra__free_strv(argv);
    const char *sub = getenv("RAYO_SUBMISSION_ID");
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_JOB_ADD);
    ra__wb_pid(&b, c->core);
    ra__wb_u64(&b, (uint64_t)getpid());
    ra__wb_u32(&b, c->node);
    ra__wb_str(&b, entry);
    ra__wb_str(&b, sub != NULL ? sub : "");
    // (ra__gcs_call would not do: this runs in ra_init, before the
    // cluster is published for it.)
    ra_msg_t *m = NULL, *rep = NULL;
    ra__rbuf_t r;
    int rc = ra__wb_msg(&b, RA__T_GCS, &m);
    if (rc == 0) {
        rc = ra__call_status(scope, c->gcs, &m, 10000, &rep, &r);
    }
    if (rc != 0) {
        return rc;
    }
    uint64_t id = ra__rb_u64(&r);
    ra_msg_unref(&rep);
    if (!r.bad) {
        c->job_id = id;
    }
    return r.bad ? RA_EBADMSG : 0;
}

// join makes this process a driver of the node daemon's cluster that
// addr names ("auto" or a session directory).
static int
join(ra_init_opts_t o, const char *addr)
{
    char session[sizeof g_state.session];
    int dpid = 0;
    int rc = ra_cluster_locate(addr, o.temp_dir, session, sizeof session,
                               &dpid);
    if (rc == RA_ENOTSUP) {
        ra_log_err("api", "joining the cluster at %s: only a cluster on this "
                   "machine can be joined so far (address \"auto\" or its "
                   "session directory); unset RAYO_ADDRESS to start an "
                   "embedded cluster", addr);
        return rc;
    }
    if (rc == RA_ENOENT) {
        ra_log_err("api", "no cluster is running under %s: start one with "
                   "`rayo start --head`, or unset RAYO_ADDRESS to start an "
                   "embedded cluster", ra_cluster_temp_dir(o.temp_dir));
        return RA_ENOCONN;
    }
    if (rc == RA_ENOCONN) {
        ra_log_err("api", "the cluster of session %s is not running (its "
                   "daemon %d is gone): start a new one with `rayo start "
                   "--head`", session, dpid);
        return rc;
    }
    if (rc != 0) {
        ra_log_err("api", "cannot use the cluster at %s: %s", addr,
                   ra_strerror(rc));
        return rc;
    }
    node_info_t ni;
    if ((rc = read_node_info(session, &ni)) != 0) {
        return rc;
    }
    char *libs = NULL;
    if ((rc = ra__load_libs(o.libs, &libs)) != 0) {
        return rc;
    }
    free(libs);
    pthread_mutex_lock(&init_mu);
    if (ra__g != NULL) {
        pthread_mutex_unlock(&init_mu);
        return RA_EALREADY;
    }
    ra__cluster_t *c = &g_state;
    memset(c, 0, sizeof *c);
    c->joined = true;
    snprintf(c->session, sizeof c->session, "%s", session);
    snprintf(c->ns, sizeof c->ns, "%s",
             o.namespace_ != NULL ? o.namespace_ : "default");
    c->node = ni.node;
    c->proc = (uint32_t)getpid();
    c->gcs = ni.gcs;
    c->raylet = ni.raylet;
    c->inline_max = RA__INLINE_MAX_DEFAULT;
    char sock[700];
    snprintf(sock, sizeof sock, "%s/sock", session);
    ra_ctx_t *scope = NULL;
    ra_msg_t *rep = NULL;
    char bind[128] = "";
    if (ni.ip[0] != '\0') {
        // A cluster of several nodes: tcp, with its certificate.
        snprintf(c->ip, sizeof c->ip, "%s", ni.ip);
        snprintf(c->cert, sizeof c->cert, "%s", ni.cert);
        snprintf(c->gcs_ep, sizeof c->gcs_ep, "%s", ni.gcs_ep);
        snprintf(bind, sizeof bind, "tcp://%s:0", ni.ip);
    }
    if ((rc = start_rt_link(c, sock, o.threads, bind[0] ? bind : NULL,
                            NULL, false)) != 0) {
        goto fail;
    }
    if (bind[0] != '\0' &&
        ((rc = ra_link_route(c->link, c->raylet.node, c->raylet.proc,
                             ni.endpoint)) != 0 ||
         (rc = ra_link_route(c->link, c->gcs.node, c->gcs.proc,
                             ni.gcs_ep)) != 0)) {
        goto fail;
    }
    if (bind[0] != '\0') {
        // The head may have been started again since the node file was
        // written: the GCS is whoever answers at its endpoint now.
        uint32_t hn = 0, hp = 0;
        if (ra_link_connect(c->link, ni.gcs_ep, 5000, &hn, &hp) == 0 &&
            (hn != c->gcs.node || hp != c->gcs.proc)) {
            (void)ra_link_disconnect(c->link, c->gcs.node, c->gcs.proc);
            c->gcs = (ra_pid_t){hn, hp, RA__GCS_LOCAL_ID, 0};
        }
    }
    if (ni.store[0] != '\0') {
        ra_objstore_t *st = NULL;
        ra_objstore_opts_t so = {.prefault = RA_OBJSTORE_PREFAULT_NONE};
        if ((rc = ra_objstore_attach(&st, ni.store, &so)) != 0) {
            ra_log_err("api", "cannot open the node's object store %s: %s",
                       ni.store, ra_strerror(rc));
            goto fail;
        }
        c->store = st;
    }
    if ((rc = ra__core_start(c)) != 0 ||
        (rc = ra_scope_new(c->rt, &scope)) != 0) {
        goto fail;
    }
    rc = job_register(c, scope, o.workers == 0 ? UINT32_MAX
                                : o.workers == RA_WORKERS_NONE ? 0
                                                               : o.workers);
    // A driver with workers is a job of the GCS's table (a client that
    // only reads state is not).
    if (rc == 0 && o.workers != RA_WORKERS_NONE) {
        rc = job_add(c, scope);
    }
    if (rc == 0 && (rc = call_raylet_info(c, scope, c->raylet, &rep)) == 0) {
        ra__rbuf_t r;
        ra__rb_init(&r, rep);
        cpus_total = ra__rb_f64(&r);
        (void)ra__rb_f64(&r);
        gpus_total = ra__rb_f64(&r);
        (void)ra__rb_f64(&r);
        (void)ra__rb_u32(&r);
        (void)ra__rb_u32(&r);
        (void)ra__rb_u32(&r);
        ra_pid_t om = ra__rb_pid(&r);
        rc = r.bad ? RA_EBADMSG : 0;
        if (rc == 0 && c->store != NULL && !ra_pid_is_nil(om)) {
            c->objmgr = om;  // pulls objects from other nodes for us
            snprintf(c->node_ep, sizeof c->node_ep, "%s", ni.endpoint);
        }
        ra_msg_unref(&rep);
    }
    ra_scope_destroy(&scope);
    if (rc != 0) {
        ra_log_err("api", "the node daemon of %s did not take this driver: "
                   "%s", session, ra_strerror(rc));
        goto fail;
    }
    ra__g = c;
    pthread_mutex_unlock(&init_mu);
    ra_log_info("api", "joined the cluster of %s as job environment %u",
                session, c->env);
    return 0;
fail:
    ra_scope_destroy(&scope);
    c->env = 0;   // nothing registered: nothing to end
    stop_all(c);
    memset(c, 0, sizeof *c);
    pthread_mutex_unlock(&init_mu);
    return rc;
}


int
ra_init_opts(const ra_init_opts_t *opts)
{
    ra_worker_main();
    ra__log_from_env();
    ra_init_opts_t o = opts != NULL ? *opts : (ra_init_opts_t){0};
    const char *addr = o.address != NULL ? o.address : getenv("RAYO_ADDRESS");
    if (o.num_cpus < 0 || o.num_gpus < 0 || o.num_gpus > 4096 ||
        o.num_gpus != (double)(long)o.num_gpus) {
        ra_log_err("api", "num_cpus must be >= 0 and num_gpus a whole "
                   "number of devices (got %g, %g)", o.num_cpus, o.num_gpus);
        return RA_EINVAL;
    }
    if (addr != NULL && addr[0] != '\0') {
        return join(o, addr);
    }
    return start_local(o, false);
}

// start_local starts a cluster in this process: the embedded one of
// ra_init, or (daemon) a node daemon's, whose raylet starts workers for
// the drivers that join it.
static int
start_local(ra_init_opts_t o, bool daemon)
{
    pthread_mutex_lock(&init_mu);
    if (ra__g != NULL) {
        pthread_mutex_unlock(&init_mu);
        return RA_EALREADY;
    }
    ra__cluster_t *c = &g_state;
    memset(c, 0, sizeof *c);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (o.num_cpus == 0) {
        o.num_cpus = ncpu > 0 ? (double)ncpu : 1;
    }
    if (o.workers == 0) {
        o.workers = o.num_cpus >= 1 ? (unsigned)o.num_cpus : 1;
    }
    if (o.max_workers == 0) {
        o.max_workers = 4 * (unsigned)o.num_cpus + 4;
    }
    if (o.max_workers < o.workers) {
        o.max_workers = o.workers;
    }
    char *libs = NULL;
    int lrc = ra__load_libs(o.libs, &libs);
    if (lrc != 0) {
        pthread_mutex_unlock(&init_mu);
        return lrc;
    }
    const char *tmp = ra_cluster_temp_dir(o.temp_dir);
    snprintf(c->ns, sizeof c->ns, "%s",
             o.namespace_ != NULL ? o.namespace_ : "default");
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    int n = snprintf(c->session, sizeof c->session,
                     "%s/session-%04d%02d%02d-%02d%02d%02d-%d", tmp,
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, (int)getpid());
    char sock[1024], gcsdir[1024];
    int rc = 0;
    if (n <= 0 || (size_t)n >= sizeof c->session - 16) {
        rc = RA_EINVAL;
        goto fail_early;
    }
    snprintf(sock, sizeof sock, "%.500s/sock", c->session);
    snprintf(gcsdir, sizeof gcsdir, "%.500s/gcs", c->session);
    if ((rc = mkdir_p(sock)) != 0 || (rc = mkdir_p(gcsdir)) != 0) {
        ra_log_err("api", "cannot make session directory %s: %s",
                   c->session, ra_strerror(rc));
        goto fail;
    }
    c->node = 1;
    c->proc = (uint32_t)getpid();
    c->daemon = daemon;
    bool tcp = daemon && o.node_ip != NULL && o.node_ip[0] != '\0';
    bool joining = tcp && o.head != NULL && o.head[0] != '\0';
    char bind[128] = "";
    if (!tcp && o.head != NULL && o.head[0] != '\0') {
        ra_log_err("api", "joining the head at %s needs this node's address "
                   "(node_ip, rayo start --node-ip)", o.head);
        rc = RA_EINVAL;
        goto fail;
    }
    if (tcp) {
        const char *cert = o.cert;
        if (joining) {
            // Not the head: a node number of its own, the head's
            // certificate.
            uint32_t r = 0;
            if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
                r = (uint32_t)getpid() ^ (uint32_t)now;
            }
            c->node = 2 + r % 0x7ffffff0u;
            if (cert == NULL || cert[0] == '\0') {
                cert = getenv("RAYO_CERT");
            }
            if (cert == NULL || cert[0] == '\0') {
                ra_log_err("api", "joining the head at %s needs the cluster "
                           "certificate (the head's SESSION/cluster.cert): "
                           "give cert (rayo start --cert) or RAYO_CERT",
                           o.head);
                rc = RA_EINVAL;
                goto fail;
            }
            snprintf(c->cert, sizeof c->cert, "%s", cert);
        } else if (cert == NULL || cert[0] == '\0') {
            snprintf(c->cert, sizeof c->cert, "%.480s/cluster.cert",
                     c->session);
        } else {
            snprintf(c->cert, sizeof c->cert, "%s", cert);
        }
        if ((rc = ra_link_cert_ensure(c->cert)) != 0) {
            ra_log_err("api", "the cluster certificate %s: %s", c->cert,
                       ra_strerror(rc));
            goto fail;
        }
        snprintf(c->ip, sizeof c->ip, "%s", o.node_ip);
        snprintf(bind, sizeof bind, "tcp://%s:%u", o.node_ip,
                 joining ? 0u : o.port);
    }
    if (daemon && !joining) {
        // A head started where the last one died (its node file left
        // behind) takes over that GCS's tables: named actors, placement
        // groups, jobs, KV; nodes and drivers of the cluster find it
        // at the same address.
        char old[600], olddir[700];
        int opid = 0;
        if (ra_cluster_locate("auto", tmp, old, sizeof old, &opid) ==
                RA_ENOCONN &&
            strcmp(old, c->session) != 0) {
            snprintf(olddir, sizeof olddir, "%.600s/gcs", old);
            struct stat st;
            if (stat(olddir, &st) == 0 && S_ISDIR(st.st_mode)) {
                ra_log_info("api", "the head of session %s (daemon %d) "
                            "died: taking over its GCS tables", old, opid);
                snprintf(gcsdir, sizeof gcsdir, "%s", olddir);
                char info[700];
                snprintf(info, sizeof info, "%.600s/node.info", old);
                (void)unlink(info);
            }
        }
    }
    if ((rc = start_rt_link(c, sock, o.threads, bind[0] ? bind : NULL,
                            joining ? NULL : gcsdir, daemon)) != 0) {
        goto fail;
    }
    ra_link_t *l = c->link;
    if (joining) {
        snprintf(c->gcs_ep, sizeof c->gcs_ep, "tcp://%s", o.head);
        uint32_t hn = 0, hp = 0;
        if ((rc = ra_link_connect(l, c->gcs_ep, 10000, &hn, &hp)) != 0) {
            ra_log_err("api", "cannot reach the head node at %s: %s (is it "
                       "running, and is this its certificate?)", o.head,
                       ra_strerror(rc));
            goto fail;
        }
        c->gcs = (ra_pid_t){hn, hp, RA__GCS_LOCAL_ID, 0};
    }
    c->inline_max = RA__INLINE_MAX_DEFAULT;
    char store_name[128] = "";
    if (o.object_store_memory != SIZE_MAX) {
        sweep_stale_stores();
        char spill[1024];
        snprintf(spill, sizeof spill, "%.500s/spill", c->session);
        snprintf(store_name, sizeof store_name, "rayo-%d-%ld",
                 (int)getpid(), (long)now);
        ra_objstore_opts_t so = {
            .capacity = o.object_store_memory != 0 ? o.object_store_memory
                                                   : STORE_DEFAULT,
            .spill_dir = spill,
            .prefault = RA_OBJSTORE_PREFAULT_NONE,
        };
        ra_objstore_t *st = NULL;
        if ((rc = ra_objstore_create(&st, store_name, &so)) != 0) {
            ra_log_err("api", "cannot create the object store %s: %s",
                       store_name, ra_strerror(rc));
            goto fail;
        }
        c->store = st;
        // RAYO_PULL_TIMEOUT_MS: how long a transfer between nodes may
        // make no progress before its object counts as lost (30 s).
        const char *pt = getenv("RAYO_PULL_TIMEOUT_MS");
        ra__objmgr_cfg_t oc = {
            .store = st, .link = l, .ep = ra_link_endpoint(l),
            .pull_timeout_ms = pt != NULL ? (unsigned)strtoul(pt, NULL, 10)
                                          : 0,
        };
        if ((rc = ra__objmgr_start(c->rt, &oc, &c->objmgr_sys, &c->objmgr,
                                   &c->objmgr_sup)) != 0) {
            goto fail;
        }
        snprintf(c->node_ep, sizeof c->node_ep, "%s", ra_link_endpoint(l));
    }
    if ((rc = load_topology(&o, &c->topo)) != 0) {
        goto fail;
    }
    if (o.num_gpus == 0) {
        o.num_gpus = ra_topo_gpus(c->topo);
    }
    if (tcp && !joining) {
        if (c->gcs.id != RA__GCS_LOCAL_ID) {
            ra_log_err("api", "the GCS is not the daemon's first actor");
            rc = RA_EINVAL;
            goto fail;
        }
        snprintf(c->gcs_ep, sizeof c->gcs_ep, "%s", ra_link_endpoint(l));
    }
    if ((rc = ra__core_start(c)) != 0) {
        goto fail;
    }
    ra_resources_t extra;
    if ((rc = node_resources(&o, &extra)) != 0) {
        goto fail;
    }
    ra__raylet_cfg_t rc_cfg = {
        .num_cpus = o.num_cpus,
        .num_gpus = o.num_gpus,
        .workers = o.workers,
        .max_workers = o.max_workers,
        .session = c->session,
        .endpoint = ra_link_endpoint(l),
        .gcs = c->gcs,
        .ns = c->ns,
        .threads = o.threads,
        .link = l,
        .libs = libs,
        .store = store_name[0] != '\0' ? store_name : NULL,
        .store_handle = c->store,
        .objmgr = c->objmgr,
        .topo = c->topo,
        .numa_bind = !o.no_numa_bind && !env_off("RAYO_NUMA_BIND"),
        .fork_workers = !env_off("RAYO_WORKER_FORK"),
        .extra = extra,
        .daemon = daemon,
        .bind_ip = tcp ? c->ip : NULL,
        .cert = tcp ? c->cert : NULL,
        .gcs_ep = tcp ? c->gcs_ep : NULL,
        .stopping = &c->stopping,
    };
    rc = ra__raylet_start(c->rt, &rc_cfg, &c->raylet_sys, &c->raylet,
                          &c->raylet_sup);
    free(libs);
    libs = NULL;
    if (rc != 0) {
        goto fail;
    }
    cpus_total = o.num_cpus;
    gpus_total = o.num_gpus;
    if (daemon && (rc = write_node_info(c, store_name)) != 0) {
        goto fail;
    }
    ra__g = c;

    pthread_mutex_unlock(&init_mu);
    return 0;
fail:
    stop_all(c);
fail_early:
    free(libs);
    memset(c, 0, sizeof *c);
    pthread_mutex_unlock(&init_mu);
    return rc;
}

// ---- the daemon's watch on its system actors ----
//
// The GCS (head), the raylet and the object manager are restarted in
// place by supervisors of their own (gcs.c, raylet.c and objmgr.c, "kept
// up in place"); the core is not: the objects this process owns live only
// in it.  The watch monitors the core and the supervisors; when one ends
// while the daemon is not stopping (for the supervisor: it gave up after
// too many restarts), it logs which and why and stops the daemon (SIGTERM
// to itself, which ra_node_run's sigwait takes), and ra_node_run returns
// RA_EACTOR.  The supervisor one level up (the keeper of `rayo start
// --restart`, systemd) then starts the whole daemon again, as an OTP
// supervisor escalates what it cannot restart itself (doc/cluster.md,
// "Kept up").  Before, such a daemon went on serving with a dead system
// actor: every request to it went unanswered.

typedef struct watched {
    const char *name;
    ra_pid_t pid;
    uint64_t mref;
} watched_t;

enum { WATCHED_MAX = 4 };

typedef struct sys_watch {
    watched_t w[WATCHED_MAX];
    size_t n;
} sys_watch_t;

// Set by the watch when a system actor ended (the name of the first one):
// ra_node_run returns RA_EACTOR.  sys_stopping: the daemon is stopping,
// and the system actors' ends are its doing.
static _Atomic(const char *) sys_actor_lost;
static atomic_bool sys_stopping;

static int
watch_init(ra_ctx_t *ctx, void **state)
{
    sys_watch_t *sw = *state;
    for (size_t i = 0; i < sw->n; i++) {
        // (A pid already gone gives its DOWN at once.)
        int rc = ra_monitor(ctx, sw->w[i].pid, &sw->w[i].mref);
        if (rc != 0) {
            ra_log_warn("api", "cannot watch the daemon's %s: %s",
                        sw->w[i].name, ra_strerror(rc));
        }
    }
    return 0;
}

static int
watch_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)ctx;
    sys_watch_t *sw = state;
    uint64_t mref;
    ra_pid_t pid;
    ra_reason_t why;
    if (ra_msg_kind(msg) != RA_MSG_DOWN ||
        ra_msg_down_info(msg, &mref, &pid, &why) != 0) {
        return 0;
    }
    for (size_t i = 0; i < sw->n; i++) {
        if (sw->w[i].mref != mref) {
            continue;
        }
        const char *none = NULL;
        if (atomic_load(&sys_stopping) ||
            !atomic_compare_exchange_strong(&sys_actor_lost, &none,
                                            sw->w[i].name)) {
            return 0;   // stopping anyway
        }
        char r[64];
        ra_log_err("api", "the daemon's %s (actor %u.%u.%u) ended (%s): the "
                   "node cannot serve without it; the daemon stops so that "
                   "its supervisor starts it again (rayo start --restart, "
                   "or systemd)", sw->w[i].name, pid.node, pid.proc, pid.id,
                   ra_reason_str(why, r, sizeof r));
        (void)kill(getpid(), SIGTERM);
        return 0;
    }
    return 0;
}

static void
watch_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    (void)ctx;
    (void)reason;
    free(state);
}

static const ra_behaviour_t watch_beh = {
    .name = "rayo-watch",
    .init = watch_init,
    .handle = watch_handle,
    .terminate = watch_terminate,
};

// watch_start starts the watch on c's system actors: its GCS's supervisor
// when the GCS runs here (the head), its object manager's when it has one,
// its raylet's and its core.  It ends with the runtime.  Returns 0 or an
// error of ra_spawn.
static int
watch_start(ra__cluster_t *c)
{
    sys_watch_t *sw = calloc(1, sizeof *sw);
    if (sw == NULL) {
        return RA_ENOMEM;
    }
    if (!ra_pid_is_nil(c->gcs_sup)) {
        // (The GCS itself is restarted in place by it.)
        sw->w[sw->n++] = (watched_t){
            .name = "GCS supervisor (it restarts the GCS up to 5 times a "
                    "minute)",
            .pid = c->gcs_sup};
    }
    if (!ra_pid_is_nil(c->objmgr_sup)) {
        sw->w[sw->n++] = (watched_t){
            .name = "object manager supervisor (it restarts the object "
                    "manager up to 5 times a minute)",
            .pid = c->objmgr_sup};
    }
    sw->w[sw->n++] = (watched_t){
        .name = "raylet supervisor (it restarts the raylet up to 5 times a "
                "minute)",
        .pid = c->raylet_sup};
    sw->w[sw->n++] = (watched_t){.name = "core", .pid = c->core};
    int rc = ra_spawn(c->rt, &watch_beh, sw, NULL, NULL);
    if (rc != 0) {
        free(sw);   // (its init cannot fail: it never existed)
    }
    return rc;
}

int
ra_node_run(const ra_init_opts_t *opts, int ready_fd)
{
    ra_worker_main();
    ra__log_from_env();
    // The daemon moves objects between nodes in messages of about 4 MiB:
    // keep such buffers in the heap for reuse instead of mapping fresh
    // pages for each (a first touch of a page is slow on virtual
    // machines), and keep freed heap up to 256 MiB.
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
    ra_init_opts_t o = opts != NULL ? *opts : (ra_init_opts_t){0};
    if (o.num_cpus < 0 || o.num_gpus < 0 || o.num_gpus > 4096 ||
        o.num_gpus != (double)(long)o.num_gpus) {
        ra_log_err("api", "num_cpus must be >= 0 and num_gpus a whole "
                   "number of devices (got %g, %g)", o.num_cpus, o.num_gpus);
        return RA_EINVAL;
    }
    // Every thread the daemon starts inherits this mask, so the stop
    // signals reach only the sigwait below (workers get a clean mask).
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    int rc = start_local(o, true);
    if (rc != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return rc;
    }
    atomic_store(&sys_actor_lost, NULL);
    atomic_store(&sys_stopping, false);
    if ((rc = watch_start(ra__g)) != 0) {
        ra_log_err("api", "cannot watch the daemon's system actors: %s",
                   ra_strerror(rc));
        ra_shutdown();
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return rc;
    }
    ra_log_info("api", "node daemon %d serving session %s", (int)getpid(),
                ra__g->session);
    if (ready_fd >= 0) {
        char line[700];
        int n = snprintf(line, sizeof line, "%s\n", ra__g->session);
        ssize_t w = write(ready_fd, line, (size_t)n);
        (void)w;
        close(ready_fd);
    }
    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    const char *lost = atomic_load(&sys_actor_lost);
    if (lost == NULL) {
        ra_log_info("api", "node daemon %d: signal %d, stopping",
                    (int)getpid(), sig);
    }
    // The system actors' ends from here on are the shutdown's (which ends
    // the watch too).
    atomic_store(&sys_stopping, true);
    ra_shutdown();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return lost != NULL ? RA_EACTOR : 0;
}

void
ra_shutdown(void)
{
    pthread_mutex_lock(&init_mu);
    ra__cluster_t *c = ra__g;
    if (c == NULL || c->worker) {
        pthread_mutex_unlock(&init_mu);
        return;
    }
    stop_all(c);
    ra__g = NULL;
    memset(c, 0, sizeof *c);
    pthread_mutex_unlock(&init_mu);
}

bool
ra_is_initialized(void)
{
    return ra__g != NULL;
}

const char *
ra_cluster_session_dir(void)
{
    return ra__g != NULL ? ra__g->session : NULL;
}

// totals returns the resources of the cluster as this process knows
// them, for refusing infeasible requests at once.
static void
totals(double *cpus, double *gpus)
{
    if (ra__g->worker) {
        const char *c = getenv("RAYO_CPUS"), *g = getenv("RAYO_GPUS");
        *cpus = c != NULL ? atof(c) : 0;
        *gpus = g != NULL ? atof(g) : 0;
    } else {
        *cpus = cpus_total;
        *gpus = gpus_total;
    }
}

int
ra_cluster_resources(double *cpus_t, double *cpus_a, double *gpus_t,
                     double *gpus_a)
{
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    ra_ctx_t *scope = NULL;
    ra_msg_t *rep = NULL;
    int rc = ra_scope_new(ra__g->rt, &scope);
    if (rc == 0) {
        rc = call_raylet_info(ra__g, scope, ra__g->raylet, &rep);
        ra_scope_destroy(&scope);
    }
    if (rc != 0) {
        return rc;
    }
    ra__rbuf_t r;
    ra__rb_init(&r, rep);
    double v[4];
    for (int i = 0; i < 4; i++) {
        v[i] = ra__rb_f64(&r);
    }
    ra_msg_unref(&rep);
    if (r.bad) {
        return RA_EBADMSG;
    }
    if (cpus_t != NULL) {
        *cpus_t = v[0];
    }
    if (cpus_a != NULL) {
        *cpus_a = v[1];
    }
    if (gpus_t != NULL) {
        *gpus_t = v[2];
    }
    if (gpus_a != NULL) {
        *gpus_a = v[3];
    }
    return 0;
}

// ---- values ----

ra_value_kind_t
ra_value_kind(const ra_value_t *v)
{
    if (v != NULL && v->kind == RA__VAL_LENT) {
        return RA_VAL_REF;
    }
    return v != NULL ? (ra_value_kind_t)v->kind : RA_VAL_NONE;
}

int
ra_value_ref(const ra_value_t *v, ra_ref_t *out)
{
    ra__lent_t l;
    if (v == NULL || v->kind != RA__VAL_LENT ||
        ra__lent_read(v->data, v->len, &l) != 0) {
        return RA_EBADMSG;
    }
    if (out != NULL) {
        *out = l.ref;
    }
    return 0;
}

const ra_msg_t *
ra__value_nest(const ra_value_t *v)
{
    return v != NULL ? v->nest : NULL;
}

size_t
ra_value_nrefs(const ra_value_t *v)
{
    if (v != NULL && v->kind == RA__VAL_LENT) {
        return 1;
    }
    return v != NULL ? ra__nest_size(v->nest) : 0;
}

int
ra_value_ref_at(const ra_value_t *v, size_t i, ra_ref_t *out)
{
    if (v != NULL && v->kind == RA__VAL_LENT) {
        return i == 0 ? ra_value_ref(v, out) : RA_ENOENT;
    }
    return v != NULL ? ra__nest_ref(v->nest, i, out) : RA_ENOENT;
}

const void *
ra_value_data(const ra_value_t *v, size_t *len)
{
    if (len != NULL) {
        *len = v != NULL ? v->len : 0;
    }
    return v != NULL && v->data != NULL ? v->data : (const void *)"";
}

int64_t
ra_value_i64(const ra_value_t *v)
{
    if (v == NULL || v->kind != RA_VAL_I64 || v->len != 8) {
        return 0;
    }
    return ra__le64_get(v->data);
}

double
ra_value_f64(const ra_value_t *v)
{
    double d = 0;
    if (v != NULL && v->kind == RA_VAL_F64 && v->len == 8) {
        memcpy(&d, v->data, 8);
    }
    return d;
}

int
ra_value_bson(const ra_value_t *v, bson_t *doc)
{
    if (v == NULL || v->kind != RA_VAL_BSON ||
        !bson_init_static(doc, v->data, v->len)) {
        return RA_EBADMSG;
    }
    return 0;
}

const char *
ra_value_error(const ra_value_t *v)
{
    return v != NULL && v->text != NULL ? v->text : "";
}

void
ra_value_free(ra_value_t **v)
{
    if (v == NULL || *v == NULL) {
        return;
    }
    if ((*v)->store != NULL && ra__g != NULL &&
        ra__g->store == (*v)->store) {
        (void)ra_objstore_release((*v)->store, &(*v)->view);
    }
    ra_msg_unref(&(*v)->msg);
    ra_msg_unref(&(*v)->nest);
    free((*v)->text);
    free(*v);
    *v = NULL;
}

// ---- submitting ----

static bool
is_mine(ra_ref_t r)
{
    return r.node == ra__g->node && r.proc == ra__g->proc;
}

// encode_args writes the arguments and records the references among
// them: objects of this process given by value are borrowed until the
// task is sent (t->refs); references lent to the task (RA_ARG_BORROW, and
// borrowed references passed on) are held until it ends (t->lent,
// t->flent).  Returns 0 or an error.
static int
encode_args(ra__wbuf_t *b, const ra_arg_t *args, size_t nargs,
            ra__task_t *t, bool refs_ok)
{
    ra__cluster_t *c = ra__g;
    ra__core_t *cs = c->cs;
    ra__wb_u32(b, (uint32_t)nargs);
    uint32_t nrefs = 0, nlend = 0;
    for (size_t i = 0; i < nargs; i++) {
        bool ref = args[i].kind == RA_ARG_REF;
        bool lend = args[i].kind == RA_ARG_BORROW;
        nrefs += ref && is_mine(args[i].ref);
        nlend += lend || (ref && !is_mine(args[i].ref));
    }
    if (nrefs + nlend != 0 && !refs_ok) {
        return RA_EINVAL;
    }
    if ((nrefs != 0 &&
         (t->refs = calloc(nrefs, sizeof *t->refs)) == NULL) ||
        (nlend != 0 &&
         ((t->lent = calloc(nlend, sizeof *t->lent)) == NULL ||
          (t->flent = calloc(nlend, sizeof *t->flent)) == NULL))) {
        return RA_ENOMEM;
    }
    int rc = 0;
    pthread_mutex_lock(&cs->mu);
    for (size_t i = 0; i < nargs && rc == 0; i++) {
        const ra_arg_t *a = &args[i];
        bool ref = a->kind == RA_ARG_REF;
        if (!ref && a->kind != RA_ARG_BORROW) {
            ra__wb_arg(b, a);
            continue;
        }
        if (is_mine(a->ref)) {
            ra__obj_t *o = ra__obj_at(cs, a->ref.id);
            if (o == NULL || o->released) {
                rc = RA_ENOENT;
                break;
            }
            o->borrows++;
            if (ref) {
                t->refs[t->nrefs++] = a->ref.id;
                ra__wb_arg(b, a);
            } else {
                t->lent[t->nlent++] = a->ref.id;
                ra__wb_lent(b, a->ref, c->core, ra__own_ep(c), false);
            }
            continue;
        }
        ra__lent_t l;
        if ((rc = ra__fref_lend_locked(c, a->ref, &l)) != 0) {
            break;
        }
        t->flent[t->nflent++] = a->ref;
        ra__wb_lent(b, a->ref, l.core, l.ep, ref);
    }
    pthread_mutex_unlock(&cs->mu);
    return rc != 0 ? rc : b->err;
}

static void
unborrow(ra__task_t *t)
{
    for (uint32_t i = 0; i < t->nrefs; i++) {
        ra__obj_unborrow(ra__g->cs, t->refs[i]);
    }
    t->nrefs = 0;
}

// near_node is the node whose store holds the largest of a task's
// arguments given by value that lie on another node (borrowed references
// passed on with RA_ARG_REF: the owner is asked where, once), or 0.  The
// raylet then prefers that node while it has room, so the value is read
// there in place instead of copied here (Ray's locality-aware leasing).
// This process's own objects are on this node: local-first serves them.
static uint32_t
near_node(ra__cluster_t *c, const ra_arg_t *args, size_t nargs)
{
    uint32_t best = 0;
    uint64_t most = 0;
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].kind != RA_ARG_REF || is_mine(args[i].ref)) {
            continue;
        }
        uint32_t node;
        uint64_t size;
        ra__fref_locate(c, args[i].ref, &node, &size);
        if (node != 0 && node != c->node && size >= c->inline_max &&
            size > most) {
            best = node;
            most = size;
        }
    }
    return best;
}

// drop_obj ends an object that no task will complete.
static void
drop_obj(ra__core_t *cs, uint64_t id, int rc)
{
    ra__core_obj_complete(cs, id, rc, RA_VAL_NONE, NULL, "", 0);
    ra__obj_release(cs, id);
}

// submit builds a task (wire and record) and hands it to the core.
static int
submit(uint8_t type, const char *name, uint64_t actor, const ra_arg_t *args,
       size_t nargs, const ra_task_opts_t *o, int retries, ra_ref_t *out)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    if (name == NULL || strlen(name) > RA__NAME_MAX || out == NULL ||
        (nargs != 0 && args == NULL)) {
        return RA_EINVAL;
    }
    uint64_t id;
    int rc = ra__obj_new(c->cs, &id);
    if (rc != 0) {
        return rc;
    }
    ra__task_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        drop_obj(c->cs, id, RA_ENOMEM);
        return RA_ENOMEM;
    }
    t->id = id;
    t->type = type;
    t->actor = actor;
    t->retries = retries;
    t->bundle = -1;
    if (o != NULL) {
        t->cpus = o->num_cpus;
        t->gpus = o->num_gpus;
        t->pg = o->placement_group.id;
        t->bundle = t->pg != 0 ? o->bundle_index : -1;
        ra__res_extra(o->resources, &t->x);
        t->retry_exc = o->retry_exceptions;
        t->deadline = o->timeout_ms > 0 ? ra__mono_ms() + o->timeout_ms : 0;
        if (o->name != NULL && o->name[0] != '\0' &&
            (t->label = strndup(o->name, RA__NAME_MAX)) == NULL) {
            ra__core_task_free(t);
            drop_obj(c->cs, id, RA_ENOMEM);
            return RA_ENOMEM;
        }
    }
    if (type == RA__TASK_FN) {
        t->near = near_node(c, args, nargs);
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__WIRE_VERSION);
    ra__wb_u8(&b, type);
    ra__wb_u64(&b, id);
    ra__wb_u32(&b, 0);
    ra__wb_u64(&b, actor);
    ra__wb_str(&b, name);
    if ((rc = encode_args(&b, args, nargs, t, true)) != 0 ||
        (rc = ra__wb_msg(&b, RA__T_TASK, &t->wire)) != 0) {
        ra__wb_free(&b);
        unborrow(t);
        ra__core_task_free(t);
        drop_obj(c->cs, id, rc);
        return rc;
    }
    if ((rc = ra__core_post(c, t, NULL)) != 0) {
        unborrow(t);
        ra__core_task_free(t);
        drop_obj(c->cs, id, rc);
        return rc;
    }
    *out = (ra_ref_t){c->node, ra__g->proc, id};
    return 0;
}

// extra_ok tells whether x is a valid set of memory and custom resources
// (NULL: none): no CPUs or GPUs in it, nothing negative, names set.
static bool
extra_ok(const ra_resources_t *x)
{
    if (x == NULL) {
        return true;
    }
    ra_resources_t probe = {0};
    return x->cpus == 0 && x->gpus == 0 && x->ncustom <= RA_RES_CUSTOM_MAX &&
           ra_resources_add(&probe, x) == 0;
}

// gpus_ok tells whether a task or actor may ask for gpus: a fraction of
// one device, or whole devices (as Ray).
static bool
gpus_ok(double gpus)
{
    return gpus >= 0 && (gpus <= 1 ||
                         (gpus < 1e6 && gpus == (double)(long)gpus));
}

int
ra_remote(const char *fn, const ra_arg_t *args, size_t nargs,
          const ra_task_opts_t *opts, ra_ref_t *out)
{
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    ra_task_opts_t o = opts != NULL ? *opts : RA_TASK_OPTS_INIT;
    if (fn == NULL || ra__fn_lookup(fn) == NULL) {
        return fn == NULL ? RA_EINVAL : RA_ENOENT;
    }
    if (!(o.num_cpus >= 0) || !gpus_ok(o.num_gpus) || o.max_retries < -1 ||
        o.bundle_index < -1 || !extra_ok(o.resources)) {
        return RA_EINVAL;
    }
    double ct, gt;
    totals(&ct, &gt);
    if (o.num_cpus > ct + 1e-9 || o.num_gpus > gt + 1e-9) {
        return RA_EINFEASIBLE;
    }
    return submit(RA__TASK_FN, fn, 0, args, nargs, &o, o.max_retries, out);
}

// ---- objects ----

int
ra_put(const ra_arg_t *value, ra_ref_t *out)
{
    return ra_put_refs(value, NULL, 0, out);
}

int
ra_put_refs(const ra_arg_t *value, const ra_ref_t *refs, size_t nrefs,
            ra_ref_t *out)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    if (value == NULL || out == NULL || value->kind == RA_ARG_REF ||
        value->kind == RA_ARG_BORROW || (nrefs != 0 && refs == NULL) ||
        nrefs > RA__NEST_MAX) {
        return RA_EINVAL;
    }
    ra__wbuf_t b = {0};
    ra__wb_arg(&b, value);
    if (b.err != 0) {
        int rc = b.err;
        ra__wb_free(&b);
        return rc;
    }
    // The new object holds the references it contains from now on.
    ra_msg_t *nest = NULL;
    int rc = nrefs != 0 ? ra__nest_make(c, refs, nrefs, &nest) : 0;
    if (rc != 0) {
        ra__wb_free(&b);
        return rc;
    }
    uint64_t id;
    rc = ra__obj_new(c->cs, &id);
    if (rc == 0 && nest != NULL) {
        ra__obj_set_nest(c->cs, id, &nest);
    } else {
        ra__nest_drop(c, &nest);
    }
    if (rc == 0) {
        // Skip the kind byte and length: the object holds the bare value.
        // A large one goes into the node's store (read there in place by
        // ra_get and by the tasks that take it); a full store keeps it
        // here.
        ra_oid_t oid;
        ra__oid_make(oid.b, c->node, c->proc, id);
        if (c->store != NULL && b.len - 5 >= c->inline_max &&
            ra_objstore_put(c->store, oid, b.p + 5, b.len - 5) == 0) {
            ra__core_obj_complete(c->cs, id, 0,
                                  (uint8_t)(b.p[0] | RA__VAL_IN_STORE), NULL,
                                  oid.b, 16);
        } else {
            ra__core_obj_complete(c->cs, id, 0, b.p[0], NULL, b.p + 5,
                                  b.len - 5);
        }
        *out = (ra_ref_t){c->node, ra__g->proc, id};
    }
    ra__wb_free(&b);
    return rc;
}

// deadline_after returns CLOCK_MONOTONIC (the clock of the object
// table's condition variable) timeout_ms from now; now for timeout_ms <= 0.
static struct timespec
deadline_after(int64_t timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (timeout_ms > 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
    }
    return dl;
}

// waiting_t is what about_to_block did for a wait, for done_blocking.
typedef struct waiting {
    bool tried;   // ra__sched_wait_begin was asked
    bool sched;   // and counted this scheduler thread as blocked
    bool raylet;  // the raylet was told that this task waits
} waiting_t;

// about_to_block prepares a wait (once; it may be called again): on a
// scheduler thread its actors move to other threads, a spare thread
// starting if need be, and a task in a worker tells the raylet that it
// waits, so that its CPUs can run the tasks it waits for.
static void
about_to_block(waiting_t *wt)
{
    if (!wt->tried) {
        wt->tried = true;
        wt->sched = ra__sched_wait_begin();
    }
    if (!wt->raylet && ra__worker_in_task()) {
        ra__worker_notify_blocked(true);
        wt->raylet = true;
    }
}

// done_blocking ends what about_to_block started.
static void
done_blocking(waiting_t *wt)
{
    ra__sched_wait_end(wt->sched);
    if (wt->raylet) {
        ra__worker_notify_blocked(false);
    }
}

// spin_wait gives the core's thread a short while to complete object id
// before the caller sleeps on the condition variable, yielding the CPU at
// each turn (cs->mu is held on entry and on return).  A task's reply
// often comes within that while: the caller then needs no futex wake-up,
// and it does not wait for a CPU after one, which on a machine with few
// cores costs more than the wake-up itself.  Returns whether the object
// is no longer pending (or gone).
static bool
spin_wait(ra__core_t *cs, uint64_t id)
{
    int64_t t0 = ra__mono_us();
    for (unsigned i = 0; i < GET_SPIN_TURNS; i++) {
        pthread_mutex_unlock(&cs->mu);
        sched_yield();
        pthread_mutex_lock(&cs->mu);
        ra__obj_t *o = ra__obj_at(cs, id);
        if (o == NULL || o->state != RA__OBJ_PENDING) {
            return true;
        }
        if (ra__mono_us() - t0 >= GET_SPIN_US) {
            break;
        }
    }
    return false;
}

static int
wait_obj(ra__core_t *cs, uint64_t id, int64_t timeout_ms, ra__obj_t **out,
         waiting_t *blocked)
{
    struct timespec dl = deadline_after(timeout_ms);
    bool spun = false;
    for (;;) {
        ra__obj_t *o = ra__obj_at(cs, id);
        // Released, but still borrowed (a task returned it to us, say):
        // still readable.
        if (o == NULL || (o->released && o->borrows == 0)) {
            return RA_ENOENT;
        }
        if (o->state != RA__OBJ_PENDING) {
            *out = o;
            return 0;
        }
        if (timeout_ms == 0) {
            return RA_ETIMEOUT;
        }
        // Spin only off the scheduler threads: on one, the actor that
        // would complete the object may be queued on this very thread,
        // where nobody else runs it until the thread blocks
        // (about_to_block hands it on).
        if (!spun && !ra__sched_on_thread()) {
            spun = true;
            if (spin_wait(cs, id)) {
                continue;
            }
        }
        about_to_block(blocked);
        if (timeout_ms < 0) {
            pthread_cond_wait(&cs->cv, &cs->mu);
        } else if (pthread_cond_timedwait(&cs->cv, &cs->mu, &dl) ==
                   ETIMEDOUT) {
            o = ra__obj_at(cs, id);
            if (o != NULL && o->state != RA__OBJ_PENDING) {
                *out = o;
                return 0;
            }
            return RA_ETIMEOUT;
        }
    }
}

// map_value makes v a read-only view of object oid in this node's store,
// pinned until ra_value_free.  Returns 0, or the store's error (v then
// says that the object was lost).
static int
map_value(ra__cluster_t *c, ra_oid_t oid, ra_value_t *v)
{
    int rc = c->store != NULL ? ra_objstore_get(c->store, oid, 0, &v->view)
                              : RA_ENOTSUP;
    if (rc == 0) {
        v->store = c->store;
        v->data = v->view.data;
        v->len = v->view.size;
    } else {
        v->kind = RA_VAL_NONE;
        v->text = strdup("the object was lost from the node's object "
                         "store");
    }
    return rc;
}

// get_borrowed is ra_get of a reference of another process that this
// one borrows (borrow.c).
static int
get_borrowed(ra__cluster_t *c, ra_ref_t ref, int64_t timeout_ms,
             ra_value_t **out)
{
    waiting_t blocked = {0};
    ra__fval_t fv;
    // Asked first without waiting: a done object (the usual case) costs
    // one round trip, and the raylet hears nothing of it.  Only a wait
    // for one still pending lends this task's CPUs (about_to_block).
    int rc = ra__fref_fetch(c, ref, 0, &fv);
    if (rc == RA_ETIMEOUT && timeout_ms != 0) {
        about_to_block(&blocked);
        rc = ra__fref_fetch(c, ref, timeout_ms, &fv);
    }
    done_blocking(&blocked);
    if (rc == RA_EOBJLOST && out != NULL) {
        // The owner could not be asked.
        ra_value_t *v = calloc(1, sizeof *v);
        char text[200];
        snprintf(text, sizeof text, "object %" PRIu64 " is lost: its owner "
                 "(process %u.%u) cannot be reached", ref.id, ref.node,
                 ref.proc);
        if (v != NULL && (v->text = strdup(text)) != NULL) {
            *out = v;
        } else {
            free(v);
        }
        return rc;
    }
    if (rc != 0) {
        return rc;
    }
    ra_value_t *v = out != NULL ? calloc(1, sizeof *v) : NULL;
    rc = fv.status;
    if (v == NULL) {
        ra_msg_unref(&fv.msg);
        ra_msg_unref(&fv.nest);
        return out != NULL ? RA_ENOMEM : rc;
    }
    v->kind = fv.kind;
    v->nest = fv.nest;   // taken
    if (fv.status != 0) {
        v->kind = RA_VAL_NONE;
        v->text = strndup(fv.data != NULL ? fv.data : "", fv.len);
        ra_msg_unref(&fv.msg);
    } else if (fv.in_store) {
        rc = map_value(c, fv.oid, v) != 0 ? RA_EOBJLOST : 0;
    } else {
        v->msg = fv.msg;
        v->data = fv.data;
        v->len = fv.len;
    }
    *out = v;
    return rc;
}

int
ra_get(ra_ref_t ref, int64_t timeout_ms, ra_value_t **out)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    if (!is_mine(ref)) {
        return get_borrowed(c, ref, timeout_ms, out);
    }
    ra__core_t *cs = c->cs;
    ra_value_t *v = out != NULL ? calloc(1, sizeof *v) : NULL;
    if (out != NULL && v == NULL) {
        return RA_ENOMEM;
    }
    pthread_mutex_lock(&cs->mu);
    ra__obj_t *o = NULL;
    waiting_t blocked = {0};
    int rc = wait_obj(cs, ref.id, timeout_ms, &o, &blocked);
    if (rc == 0) {
        rc = o->err;
        if (v != NULL) {
            v->kind = o->kind;
            if (o->state == RA__OBJ_READY && o->nest != NULL) {
                v->nest = ra_msg_ref(o->nest);
            }
            if (o->state == RA__OBJ_READY && o->in_store) {
                ra_oid_t oid;
                memcpy(oid.b, o->oid, 16);
                rc = map_value(c, oid, v);
            } else if (o->state == RA__OBJ_READY) {
                v->msg = o->msg != NULL ? ra_msg_ref(o->msg) : NULL;
                v->data = o->data;
                v->len = o->len;
            } else {
                v->kind = RA_VAL_NONE;
                v->text = strdup(o->text != NULL ? o->text
                                                 : ra_err_name(o->err));
            }
        }
    }
    pthread_mutex_unlock(&cs->mu);
    done_blocking(&blocked);
    if (out != NULL) {
        if (rc == 0 || (v != NULL && v->text != NULL)) {
            *out = v;
        } else {
            ra_value_free(&v);
        }
    }
    return rc;
}

int
ra_get_i64(ra_ref_t ref, int64_t timeout_ms, int64_t *x)
{
    ra_value_t *v = NULL;
    int rc = ra_get(ref, timeout_ms, &v);
    if (rc == 0) {
        if (ra_value_kind(v) != RA_VAL_I64) {
            rc = RA_EBADMSG;
        } else if (x != NULL) {
            *x = ra_value_i64(v);
        }
    }
    ra_value_free(&v);
    return rc;
}

// wait_borrowed asks the owners of the borrowed references among refs
// that are not ready yet whether they are (cs->mu not held).  Returns
// whether some may still become ready.
static bool
wait_borrowed(ra__cluster_t *c, const ra_ref_t *refs, size_t n, bool *ready,
              bool *gone)
{
    bool pending = false;
    for (size_t i = 0; i < n; i++) {
        if (is_mine(refs[i]) || ready[i] || gone[i]) {
            continue;
        }
        ra__fval_t fv;
        int rc = ra__fref_fetch(c, refs[i], 0, &fv);
        if (rc == 0) {
            ra_msg_unref(&fv.msg);
            ra_msg_unref(&fv.nest);
            ready[i] = true;
        } else if (rc == RA_ETIMEOUT) {
            pending = true;
        } else if (rc == RA_EOBJLOST) {
            ready[i] = true;   // ra_get tells why
        } else {
            gone[i] = true;    // not borrowed here: never ready
        }
    }
    return pending;
}

int
ra_wait(const ra_ref_t *refs, size_t n, size_t num_ready,
        int64_t timeout_ms, bool *ready)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    if ((n != 0 && (refs == NULL || ready == NULL)) || num_ready > n) {
        return RA_EINVAL;
    }
    ra__core_t *cs = c->cs;
    size_t nforeign = 0;
    for (size_t i = 0; i < n; i++) {
        ready[i] = false;
        nforeign += !is_mine(refs[i]);
    }
    bool *gone = nforeign != 0 ? calloc(n, sizeof *gone) : NULL;
    if (nforeign != 0 && gone == NULL) {
        return RA_ENOMEM;
    }
    struct timespec dl = deadline_after(timeout_ms);
    size_t k;
    waiting_t blocked = {0};
    for (;;) {
        bool fpend = nforeign != 0 &&
                     wait_borrowed(c, refs, n, ready, gone);
        pthread_mutex_lock(&cs->mu);
        k = 0;
        for (size_t i = 0; i < n; i++) {
            if (is_mine(refs[i])) {
                ra__obj_t *o = ra__obj_at(cs, refs[i].id);
                // A released or unknown reference will never become ready.
                ready[i] = o != NULL && o->state != RA__OBJ_PENDING;
            }
            k += ready[i];
        }
        if (k >= num_ready || timeout_ms == 0) {
            pthread_mutex_unlock(&cs->mu);
            break;
        }
        about_to_block(&blocked);
        // Borrowed objects are asked about again in 2 ms.
        struct timespec until = dl;
        if (fpend) {
            struct timespec soon = deadline_after(2);
            if (timeout_ms < 0 || soon.tv_sec < dl.tv_sec ||
                (soon.tv_sec == dl.tv_sec && soon.tv_nsec < dl.tv_nsec)) {
                until = soon;
            }
        }
        int w = timeout_ms < 0 && !fpend
                    ? pthread_cond_wait(&cs->cv, &cs->mu)
                    : pthread_cond_timedwait(&cs->cv, &cs->mu, &until);
        pthread_mutex_unlock(&cs->mu);
        if (w == ETIMEDOUT && timeout_ms > 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > dl.tv_sec ||
                (now.tv_sec == dl.tv_sec && now.tv_nsec >= dl.tv_nsec)) {
                timeout_ms = 0;   // one last count
            }
        }
    }
    free(gone);
    done_blocking(&blocked);
    return (int)k;
}

void
ra_release(ra_ref_t ref)
{
    if (ra__g != NULL && is_mine(ref)) {
        ra__obj_release(ra__g->cs, ref.id);
    } else if (ra__g != NULL && ra__fref_release(ra__g, ref)) {
        ra__worker_let_go(ref);
    }
}

int
ra_borrow(ra_ref_t ref)
{
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    if (is_mine(ref)) {
        return RA_EINVAL;
    }
    int rc = ra__fref_keep(ra__g, ref);
    if (rc == 0) {
        ra__worker_kept(ref);
    }
    return rc;
}

int
ra_store_usage(ra_store_usage_t *out)
{
    if (out == NULL) {
        return RA_EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    if (ra__g->store == NULL) {
        return RA_ENOTSUP;
    }
    ra_objstore_stats_t s;
    int rc = ra_objstore_stats(ra__g->store, &s);
    if (rc == 0) {
        out->capacity = s.capacity;
        out->used = s.used;
        out->objects = s.objects;
        out->spilled = s.spilled;
        out->spilled_bytes = s.spilled_bytes;
    }
    return rc;
}

int
ra_transfer_stats(ra_transfer_stats_t *out)
{
    if (out == NULL) {
        return RA_EINVAL;
    }
    memset(out, 0, sizeof *out);
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    if (ra_pid_is_nil(c->objmgr)) {
        return RA_ENOTSUP;
    }
    ra_ctx_t *scope = NULL;
    int rc = ra_scope_new(c->rt, &scope);
    if (rc != 0) {
        return rc;
    }
    uint8_t op = RA__OBJ_STATS;
    ra_msg_t *m = NULL, *rep = NULL;
    if ((rc = ra_msg_new_bytes(&m, RA__T_OBJ, &op, 1)) == 0 &&
        (rc = ra__call_kept(c, scope, c->objmgr, m, 5000,
                            RA__KEPT_BACK_MS, &rep)) == 0) {
        ra__rbuf_t r;
        ra__rb_init(&r, rep);
        out->pulls = ra__rb_u64(&r);
        out->pull_failures = ra__rb_u64(&r);
        out->pulled_bytes = ra__rb_u64(&r);
        out->pull_us = ra__rb_u64(&r);
        out->served_bytes = ra__rb_u64(&r);
        if (r.bad) {
            memset(out, 0, sizeof *out);
            rc = RA_EBADMSG;
        }
    }
    ra_msg_unref(&m);
    ra_msg_unref(&rep);
    ra_scope_destroy(&scope);
    return rc;
}

static int
send_cmd(int op, uint64_t id, bool force)
{
    ra__cmd_t *cmd = calloc(1, sizeof *cmd);
    if (cmd == NULL) {
        return RA_ENOMEM;
    }
    cmd->op = op;
    cmd->id = id;
    cmd->force = force;
    int rc = ra__core_post(ra__g, NULL, cmd);
    if (rc != 0) {
        free(cmd);
    }
    return rc;
}

int
ra_cancel(ra_ref_t ref, bool force)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    if (!is_mine(ref)) {
        return RA_ENOENT;
    }
    pthread_mutex_lock(&c->cs->mu);
    ra__obj_t *o = ra__obj_at(c->cs, ref.id);
    int rc = o == NULL ? RA_ENOENT
             : o->state != RA__OBJ_PENDING ? RA_EALREADY
                                           : 0;
    pthread_mutex_unlock(&c->cs->mu);
    return rc != 0 ? rc : send_cmd(RA__CMD_CANCEL, ref.id, force);
}

// ---- actors ----

int
ra_actor_create(const char *cls, const ra_arg_t *args, size_t nargs,
                const ra_actor_opts_t *opts, ra_actor_t *out)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    ra_actor_opts_t o = opts != NULL ? *opts : RA_ACTOR_OPTS_INIT;
    if (cls == NULL || out == NULL || (nargs != 0 && args == NULL) ||
        !(o.num_cpus >= 0) || !gpus_ok(o.num_gpus) || o.max_restarts < -1 ||
        o.bundle_index < -1 || !extra_ok(o.resources) ||
        o.max_task_retries < -1 || o.max_concurrency < 0 ||
        o.max_concurrency > RA__MAX_CONCURRENCY ||
        (o.name != NULL && (o.name[0] == '\0' ||
                            strlen(o.name) > RA__NAME_MAX)) ||
        (o.namespace_ != NULL && strlen(o.namespace_) > RA__NAME_MAX)) {
        return RA_EINVAL;
    }
    if (ra__class_lookup(cls) == NULL) {
        return RA_ENOENT;
    }
    double ct, gt;
    totals(&ct, &gt);
    if (o.num_cpus > ct + 1e-9 || o.num_gpus > gt + 1e-9) {
        return RA_EINFEASIBLE;
    }
    const char *ns = o.namespace_ != NULL ? o.namespace_ : c->ns;
    int rc;
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    if (o.name != NULL) {
        // Reserve the name first, so that two creators cannot both win.
        ra__wbuf_t b = {0};
        ra__wb_u8(&b, RA__GCS_NAME_PUT);
        ra__wb_str(&b, ns);
        ra__wb_str(&b, o.name);
        ra__wb_pid(&b, RA_PID_NIL);
        ra__wb_str(&b, cls);
        ra__wb_u8(&b, 0);
        if ((rc = ra__gcs_call_status(NULL, &b, 10000, &rep, &r)) != 0) {
            return rc;
        }
        ra_msg_unref(&rep);
    }
    uint64_t id;
    ra__cactor_t *a = NULL;
    if ((rc = ra__obj_new(c->cs, &id)) != 0) {
        return rc;
    }
    if ((rc = ra__actor_new(c->cs, &a)) != 0) {
        drop_obj(c->cs, id, rc);
        return rc;
    }
    snprintf(a->cls, sizeof a->cls, "%s", cls);
    snprintf(a->name, sizeof a->name, "%s", o.name != NULL ? o.name : "");
    snprintf(a->ns, sizeof a->ns, "%s", ns);
    a->owned = true;
    a->max_restarts = o.max_restarts;
    a->max_task_retries = o.max_task_retries;
    a->cpus = o.num_cpus;
    a->gpus = o.num_gpus;
    // GPUs belong to a process (CUDA_VISIBLE_DEVICES): an actor that
    // holds some gets a process of its own.  One in a placement group
    // shares a worker like any other; the group's removal ends the
    // instance, not the process (RA__T_LEASE_END).
    ra__res_extra(o.resources, &a->x);
    a->pg = o.placement_group.id;
    a->bundle = a->pg != 0 ? o.bundle_index : -1;
    a->isolation = o.num_gpus > 0 || o.detached
                       ? RA_ISOLATION_PROCESS
                       : o.isolation;
    // A detached actor outlives its job: its worker is its own, and the
    // raylet keeps it (and its resources) when this program ends.
    a->detached = o.detached;
    if (o.detached) {
        a->isolation |= RA__ISO_DETACHED;
    }
    a->ctor_id = id;
    a->create_obj = id;
    ra__task_t tmp = {0};
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__WIRE_VERSION);
    ra__wb_u8(&b, RA__TASK_CTOR);
    ra__wb_u64(&b, id);
    ra__wb_u32(&b, 0);
    ra__wb_u64(&b, a->key);
    ra__wb_str(&b, cls);
    if ((rc = encode_args(&b, args, nargs, &tmp, false)) == 0) {
        ra__wb_u32(&b, o.max_concurrency > 1 ? (uint32_t)o.max_concurrency
                                             : 1);
    }
    if (rc != 0 || (rc = ra__wb_msg(&b, RA__T_ACTOR_NEW, &a->ctor)) != 0) {
        ra__wb_free(&b);
        free(tmp.refs);
        a->state = RA__ACTOR_DEAD;
        snprintf(a->death, sizeof a->death, "never created");
        drop_obj(c->cs, id, rc);
        return rc;
    }
    if ((rc = send_cmd(RA__CMD_ACTOR_NEW, a->key, false)) != 0) {
        a->state = RA__ACTOR_DEAD;
        drop_obj(c->cs, id, rc);
        return rc;
    }
    if (o.no_wait) {
        // The core completes the creation object later; nobody reads it.
        ra__obj_release(c->cs, id);
        out->id = a->key;
        return 0;
    }
    ra_value_t *v = NULL;
    rc = ra_get((ra_ref_t){c->node, ra__g->proc, id}, -1, &v);
    if (rc != 0) {
        ra_log_info("api", "actor %s not created: %s", cls,
                    ra_value_error(v));
    }
    ra_value_free(&v);
    ra__obj_release(c->cs, id);
    if (rc == 0) {
        out->id = a->key;
    }
    return rc;
}

int
ra_actor_call(ra_actor_t a, const char *method, const ra_arg_t *args,
              size_t nargs, ra_ref_t *out)
{
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    return ra_actor_call_opts(a, method, args, nargs, NULL, out);
}

int
ra_actor_call_opts(ra_actor_t a, const char *method, const ra_arg_t *args,
                   size_t nargs, const ra_call_opts_t *opts, ra_ref_t *out)
{
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    ra__cactor_t *r = ra__cactor_at(ra__g->cs, a.id);
    if (r == NULL) {
        return RA_ENOENT;
    }
    if (opts != NULL && opts->timeout_ms < 0) {
        return RA_EINVAL;
    }
    ra_task_opts_t o = {.timeout_ms = opts != NULL ? opts->timeout_ms : 0};
    return submit(RA__TASK_METHOD, method, a.id, args, nargs, &o,
                  r->max_task_retries, out);
}

int
ra_actor_kill(ra_actor_t a)
{
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    if (ra__cactor_at(ra__g->cs, a.id) == NULL) {
        return RA_ENOENT;
    }
    return send_cmd(RA__CMD_ACTOR_KILL, a.id, false);
}

int
ra_actor_lookup(const char *name, const char *namespace_, ra_actor_t *out)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    if (name == NULL || out == NULL || strlen(name) > RA__NAME_MAX ||
        (namespace_ != NULL && strlen(namespace_) > RA__NAME_MAX)) {
        return RA_EINVAL;
    }
    ra__wbuf_t b = {0};
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    ra__wb_u8(&b, RA__GCS_NAME_GET);
    ra__wb_str(&b, namespace_ != NULL ? namespace_ : c->ns);
    ra__wb_str(&b, name);
    int rc = ra__gcs_call_status(NULL, &b, 10000, &rep, &r);
    if (rc != 0) {
        return rc;
    }
    ra_pid_t pid = ra__rb_pid(&r);
    char cls[RA__NAME_MAX + 1], ep[256] = "";
    ra__rb_str(&r, cls, sizeof cls);
    if (!r.bad && r.off < r.len) {
        ra__rb_str(&r, ep, sizeof ep);
    }
    ra_msg_unref(&rep);
    if (rc == 0 && (r.bad || ra_pid_is_nil(pid))) {
        rc = r.bad ? RA_EBADMSG : RA_ENOENT;   // reserved, not up yet
    }
    if (rc != 0) {
        return rc;
    }
    // An actor on another node is reached at its worker's endpoint.
    if (ep[0] != '\0' && (pid.node != c->node || pid.proc != c->proc) &&
        (rc = ra_link_route(c->link, pid.node, pid.proc, ep)) != 0) {
        return rc;
    }
    ra__cactor_t *a = NULL;
    if ((rc = ra__actor_new(c->cs, &a)) != 0) {
        return rc;
    }
    snprintf(a->cls, sizeof a->cls, "%s", cls);
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->ns, sizeof a->ns, "%s",
             namespace_ != NULL ? namespace_ : c->ns);
    a->pid = pid;
    if ((rc = send_cmd(RA__CMD_ACTOR_ADOPT, a->key, false)) != 0) {
        a->state = RA__ACTOR_DEAD;
        return rc;
    }
    out->id = a->key;
    return 0;
}

// ---- placement groups ----

const char *
ra_pg_state_name(ra_pg_state_t s)
{
    switch (s) {
    case RA_PG_PENDING:
        return "PENDING";
    case RA_PG_CREATED:
        return "CREATED";
    case RA_PG_RESCHEDULING:
        return "RESCHEDULING";
    case RA_PG_REMOVED:
        return "REMOVED";
    }
    return "?";
}

// res_ok tells whether a bundle asks for something, and nothing negative.
static bool
res_ok(const ra_resources_t *b)
{
    bool some = b->cpus > 0 || b->gpus > 0 || b->memory > 0;
    if (!(b->cpus >= 0) || !gpus_ok(b->gpus) || !(b->memory >= 0) ||
        b->ncustom > RA_RES_CUSTOM_MAX) {
        return false;
    }
    for (size_t i = 0; i < b->ncustom; i++) {
        if (!(b->custom[i].amount >= 0) || b->custom[i].name[0] == '\0' ||
            memchr(b->custom[i].name, '\0', sizeof b->custom[i].name) ==
                NULL) {
            return false;
        }
        some = some || b->custom[i].amount > 0;
    }
    return some;
}

// pg_call_id sends a GCS request whose reply carries a group id.
static int
pg_call_id(ra__wbuf_t *b, ra_pg_t *out)
{
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    int rc = ra__gcs_call_status(NULL, b, 10000, &rep, &r);
    if (rc != 0) {
        return rc;
    }
    uint64_t id = ra__rb_u64(&r);
    rc = r.bad || id == 0 ? RA_EBADMSG : 0;
    ra_msg_unref(&rep);
    if (rc == 0) {
        out->id = id;
    }
    return rc;
}

int
ra_pg_create(const ra_resources_t *bundles, size_t n, const ra_pg_opts_t *opts,
             ra_pg_t *out)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    ra_pg_opts_t o = opts != NULL ? *opts : (ra_pg_opts_t){0};
    if (bundles == NULL || out == NULL || n == 0 ||
        n > RA_PLACE_MAX_BUNDLES || (unsigned)o.strategy > RA_PG_STRICT_SPREAD ||
        (o.name != NULL && (o.name[0] == '\0' ||
                            strlen(o.name) > RA__NAME_MAX)) ||
        (o.namespace_ != NULL && strlen(o.namespace_) > RA__NAME_MAX)) {
        return RA_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!res_ok(&bundles[i])) {
            return RA_EINVAL;
        }
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_PG_CREATE);
    ra__wb_str(&b, o.namespace_ != NULL ? o.namespace_ : c->ns);
    ra__wb_str(&b, o.name != NULL ? o.name : "");
    ra__wb_u8(&b, (uint8_t)o.strategy);
    ra__wb_u8(&b, o.detached);
    ra__wb_pid(&b, c->core);
    ra__wb_u64(&b, 0);
    ra__wb_u32(&b, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        ra__wb_res(&b, &bundles[i]);
    }
    return pg_call_id(&b, out);
}

int
ra_pg_ready(ra_pg_t pg, ra_ref_t *out)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    if (out == NULL || pg.id == 0) {
        return pg.id == 0 && out != NULL ? RA_ENOENT : RA_EINVAL;
    }
    uint64_t id;
    int rc = ra__obj_new(c->cs, &id);
    if (rc != 0) {
        return rc;
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_PG_READY);
    ra__wb_u64(&b, pg.id);
    ra__wb_pid(&b, c->core);
    ra__wb_u64(&b, id);
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    if ((rc = ra__gcs_call_status(NULL, &b, 10000, &rep, &r)) != 0) {
        drop_obj(c->cs, id, rc);
        return rc;
    }
    uint8_t state = ra__rb_u8(&r);
    rc = r.bad ? RA_EBADMSG : 0;
    ra_msg_unref(&rep);
    if (rc != 0) {
        drop_obj(c->cs, id, rc);
        return rc;
    }
    if (state == RA_PG_CREATED) {
        ra__core_obj_complete(c->cs, id, 0, RA_VAL_NONE, NULL, NULL, 0);
    }
    *out = (ra_ref_t){c->node, c->proc, id};
    return 0;
}

int
ra_pg_wait(ra_pg_t pg, int64_t timeout_ms)
{
    ra_ref_t ref;
    int rc = ra_pg_ready(pg, &ref);
    if (rc != 0) {
        return rc;
    }
    ra_value_t *v = NULL;
    rc = ra_get(ref, timeout_ms, &v);
    ra_value_free(&v);
    ra_release(ref);
    return rc;
}

int
ra_pg_remove(ra_pg_t pg)
{
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_PG_REMOVE);
    ra__wb_u64(&b, pg.id);
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    int rc = ra__gcs_call_status(NULL, &b, 10000, &rep, &r);
    if (rc == 0) {
        ra_msg_unref(&rep);
        // Leases this process keeps idle in the group go back now: tasks
        // submitted from here on ask the raylet, which refuses them.
        (void)send_cmd(RA__CMD_PG_GONE, pg.id, false);
    }
    return rc;
}

int
ra_pg_get(const char *name, const char *namespace_, ra_pg_t *out)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    if (name == NULL || out == NULL || name[0] == '\0' ||
        strlen(name) > RA__NAME_MAX ||
        (namespace_ != NULL && strlen(namespace_) > RA__NAME_MAX)) {
        return RA_EINVAL;
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_PG_GET);
    ra__wb_str(&b, namespace_ != NULL ? namespace_ : c->ns);
    ra__wb_str(&b, name);
    return pg_call_id(&b, out);
}

void
ra_pg_info_free(ra_pg_info_t *info)
{
    if (info != NULL) {
        free(info->bundles);
        info->bundles = NULL;
        info->nbundles = 0;
    }
}

void
ra_pg_list_free(ra_pg_info_t *list, size_t n)
{
    for (size_t i = 0; list != NULL && i < n; i++) {
        ra_pg_info_free(&list[i]);
    }
    free(list);
}

// pg_decode reads one record (gcs_pg.c's pg_encode).
static int
pg_decode(const void *p, size_t len, ra_pg_info_t *out)
{
    ra__rbuf_t r = {.p = p, .len = len};
    memset(out, 0, sizeof *out);
    out->pg.id = ra__rb_u64(&r);
    ra__rb_str(&r, out->namespace_, sizeof out->namespace_);
    ra__rb_str(&r, out->name, sizeof out->name);
    out->strategy = (ra_pg_strategy_t)ra__rb_u8(&r);
    out->detached = ra__rb_u8(&r) != 0;
    out->state = (ra_pg_state_t)ra__rb_u8(&r);
    uint32_t nb = ra__rb_u32(&r);
    if (r.bad || nb == 0 || nb > RA_PLACE_MAX_BUNDLES) {
        return RA_EBADMSG;
    }
    out->bundles = calloc(nb, sizeof *out->bundles);
    if (out->bundles == NULL) {
        return RA_ENOMEM;
    }
    out->nbundles = nb;
    for (uint32_t i = 0; i < nb; i++) {
        ra__rb_res(&r, &out->bundles[i].need);
        out->bundles[i].node = ra__rb_u32(&r);
    }
    if (r.bad) {
        ra_pg_info_free(out);
        return RA_EBADMSG;
    }
    return 0;
}

// pg_infos asks the GCS for one group (id) or all (0).
static int
pg_infos(uint64_t id, ra_pg_info_t **out, size_t *n)
{
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_PG_INFO);
    ra__wb_u64(&b, id);
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    int rc = ra__gcs_call_status(NULL, &b, 10000, &rep, &r);
    if (rc != 0) {
        return rc;
    }
    uint32_t count = ra__rb_u32(&r);
    ra_pg_info_t *list = calloc(count + 1, sizeof *list);
    size_t k = 0;
    rc = r.bad ? RA_EBADMSG : list == NULL ? RA_ENOMEM : 0;
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        size_t len = 0;
        const void *rec = ra__rb_bytes(&r, &len);
        rc = r.bad ? RA_EBADMSG : pg_decode(rec, len, &list[k]);
        k += rc == 0;
    }
    ra_msg_unref(&rep);
    if (rc != 0) {
        ra_pg_list_free(list, k);
        return rc;
    }
    *out = list;
    *n = k;
    return 0;
}

int
ra_pg_info(ra_pg_t pg, ra_pg_info_t *out)
{
    if (out == NULL || pg.id == 0) {
        return out == NULL ? RA_EINVAL : RA_ENOENT;
    }
    ra_pg_info_t *list = NULL;
    size_t n = 0;
    int rc = pg_infos(pg.id, &list, &n);
    if (rc != 0) {
        return rc;
    }
    if (n != 1) {
        ra_pg_list_free(list, n);
        return RA_ENOENT;
    }
    *out = list[0];
    free(list);
    return 0;
}

int
ra_pg_list(ra_pg_info_t **out, size_t *n)
{
    if (out == NULL || n == NULL) {
        return RA_EINVAL;
    }
    return pg_infos(0, out, n);
}

// ---- nodes ----

void
ra_node_list_free(ra_node_info_t *list, size_t n)
{
    for (size_t i = 0; list != NULL && i < n; i++) {
        bson_free(list[i].topology_json);
    }
    free(list);
}

// node_live asks a node's raylet for what is free now.
static void
node_live(ra_ctx_t *scope, ra_pid_t raylet, ra_node_info_t *ni)
{
    ni->cpus_avail = ni->gpus_avail = -1;
    ra_msg_t *rep = NULL;
    if (!ni->alive || call_raylet_info(ra__g, scope, raylet, &rep) != 0) {
        return;
    }
    ra__rbuf_t r;
    ra__rb_init(&r, rep);
    (void)ra__rb_f64(&r);
    double ca = ra__rb_f64(&r);
    (void)ra__rb_f64(&r);
    double ga = ra__rb_f64(&r);
    uint32_t workers = ra__rb_u32(&r);
    uint32_t pending = ra__rb_u32(&r);
    uint32_t leases = ra__rb_u32(&r);
    (void)ra__rb_pid(&r);
    ra_store_usage_t su;
    su.capacity = ra__rb_u64(&r);
    su.used = ra__rb_u64(&r);
    su.objects = ra__rb_u64(&r);
    su.spilled = ra__rb_u64(&r);
    su.spilled_bytes = ra__rb_u64(&r);
    if (!r.bad) {
        ni->cpus_avail = ca;
        ni->gpus_avail = ga;
        ni->workers = workers;
        ni->pending = pending;
        ni->leases = leases;
        ni->store = su;
    }
    ra_msg_unref(&rep);
}

int
ra_node_list(ra_node_info_t **out, size_t *n)
{
    if (out == NULL || n == NULL) {
        return RA_EINVAL;
    }
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_NODE_LIST);
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    int rc = ra__gcs_call_status(NULL, &b, 10000, &rep, &r);
    if (rc != 0) {
        return rc;
    }
    uint32_t count = ra__rb_u32(&r);
    ra_node_info_t *list = r.bad || count > 100000
                               ? NULL : calloc(count + 1, sizeof *list);
    ra_pid_t *raylets = list != NULL ? calloc(count + 1, sizeof *raylets)
                                     : NULL;
    rc = r.bad || count > 100000 ? RA_EBADMSG
         : raylets == NULL       ? RA_ENOMEM
                                 : 0;
    size_t k = 0;
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        ra_node_info_t *ni = &list[k];
        ni->node = ra__rb_u32(&r);
        raylets[k] = ra__rb_pid(&r);
        ni->proc = raylets[k].proc;
        ni->raylet = raylets[k];
        ni->alive = ra__rb_u8(&r) != 0;
        ra__rb_res(&r, &ni->total);
        ra__rb_res(&r, &ni->bundles);
        ra__rb_str(&r, ni->topology, sizeof ni->topology);
        size_t len = 0;
        const uint8_t *doc = ra__rb_bytes(&r, &len);
        if (r.bad) {
            rc = RA_EBADMSG;
            break;
        }
        char ep[256];
        ra__rb_str(&r, ep, sizeof ep);
        if (r.bad) {
            rc = RA_EBADMSG;
            break;
        }
        if (ep[0] != '\0' && raylets[k].node != ra__g->node) {
            (void)ra_link_route(ra__g->link, raylets[k].node,
                                raylets[k].proc, ep);
        }
        bson_t t;
        if (len > 0 && bson_init_static(&t, doc, len)) {
            ni->topology_json = bson_as_relaxed_extended_json(&t, NULL);
        }
        k++;
    }
    ra_msg_unref(&rep);
    ra_ctx_t *scope = NULL;
    if (rc == 0 && (rc = ra_scope_new(ra__g->rt, &scope)) == 0) {
        for (size_t i = 0; i < k; i++) {
            node_live(scope, raylets[i], &list[i]);
        }
        ra_scope_destroy(&scope);
    }
    free(raylets);
    if (rc != 0) {
        ra_node_list_free(list, k);
        return rc;
    }
    *out = list;
    *n = k;
    return 0;
}

// ---- jobs ----

const char *
ra_job_state_name(ra_job_state_t s)
{
    switch (s) {
    case RA_JOB_RUNNING:
        return "RUNNING";
    case RA_JOB_SUCCEEDED:
        return "SUCCEEDED";
    case RA_JOB_FAILED:
        return "FAILED";
    case RA_JOB_STOPPED:
        return "STOPPED";
    default:
        return "?";
    }
}

uint64_t
ra_job_id(void)
{
    return ra__g != NULL ? ra__g->job_id : 0;
}

// gcs_list asks the GCS for the records of list operation op (with the
// u32 *arg after it, unless NULL): *count of them, and a zeroed array of
// count + 1 elements of each bytes in *list for the caller to fill from
// *r (then it unrefs *rep).
static int
gcs_list(uint8_t op, const uint32_t *arg, size_t each, void **list,
         uint32_t *count, ra_msg_t **rep, ra__rbuf_t *r)
{
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, op);
    if (arg != NULL) {
        ra__wb_u32(&b, *arg);
    }
    int rc = ra__gcs_call_status(NULL, &b, 10000, rep, r);
    if (rc != 0) {
        return rc;
    }
    *count = ra__rb_u32(r);
    *list = r->bad || *count > 10000000 ? NULL : calloc(*count + 1, each);
    if (*list == NULL) {
        ra_msg_unref(rep);
        return r->bad || *count > 10000000 ? RA_EBADMSG : RA_ENOMEM;
    }
    return 0;
}

int
ra_job_list(ra_job_info_t **out, size_t *n)
{
    if (out == NULL || n == NULL) {
        return RA_EINVAL;
    }
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    ra_job_info_t *list = NULL;
    uint32_t count = 0;
    int rc = gcs_list(RA__GCS_JOB_LIST, NULL, sizeof *list, (void **)&list,
                      &count, &rep, &r);
    if (rc != 0) {
        return rc;
    }
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        ra_job_info_t *j = &list[i];
        j->id = ra__rb_u64(&r);
        size_t len = 0;
        const void *p = ra__rb_bytes(&r, &len);
        ra__rbuf_t x = {.p = p, .len = len};
        j->state = (ra_job_state_t)ra__rb_u8(&x);
        (void)ra__rb_pid(&x);
        j->pid = (int64_t)ra__rb_u64(&x);
        j->node = ra__rb_u32(&x);
        j->start_ms = (int64_t)ra__rb_u64(&x);
        j->end_ms = (int64_t)ra__rb_u64(&x);
        ra__rb_str(&x, j->entrypoint, sizeof j->entrypoint);
        ra__rb_str(&x, j->submission, sizeof j->submission);
        ra__rb_str(&x, j->message, sizeof j->message);
        if (r.bad || x.bad) {
            rc = RA_EBADMSG;
        }
    }
    ra_msg_unref(&rep);
    if (rc != 0) {
        free(list);
        return rc;
    }
    *out = list;
    *n = count;
    return 0;
}

const char *
ra_actor_state_name(ra_actor_state_t s)
{
    switch (s) {
    case RA_ACTOR_PENDING:
        return "PENDING";
    case RA_ACTOR_ALIVE:
        return "ALIVE";
    case RA_ACTOR_RESTARTING:
        return "RESTARTING";
    case RA_ACTOR_DEAD:
        return "DEAD";
    default:
        return "?";
    }
}

int
ra_actor_list(ra_actor_info_t **out, size_t *n)
{
    if (out == NULL || n == NULL) {
        return RA_EINVAL;
    }
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    ra_actor_info_t *list = NULL;
    uint32_t count = 0;
    int rc = gcs_list(RA__GCS_ACTOR_LIST, NULL, sizeof *list, (void **)&list,
                      &count, &rep, &r);
    if (rc != 0) {
        return rc;
    }
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        ra_actor_info_t *a = &list[i];
        ra_oid_t raw;   // (16 raw bytes, as an object id)
        ra__rb_oid(&r, &raw);
        const unsigned char *key = raw.b;
        for (int k = 0; k < 4; k++) {
            a->owner_node = a->owner_node << 8 | key[k];
            a->owner_proc = a->owner_proc << 8 | key[4 + k];
        }
        for (int k = 0; k < 8; k++) {
            a->id = a->id << 8 | key[8 + k];
        }
        size_t len = 0;
        const void *p = ra__rb_bytes(&r, &len);
        ra__rbuf_t x = {.p = p, .len = len};
        ra__actor_rec_t rec;
        if (r.bad || ra__rb_actor_rec(&x, &rec) != 0) {
            rc = RA_EBADMSG;
            break;
        }
        a->state = (ra_actor_state_t)rec.state;
        snprintf(a->cls, sizeof a->cls, "%s", rec.cls);
        snprintf(a->name, sizeof a->name, "%s", rec.name);
        snprintf(a->namespace_, sizeof a->namespace_, "%s", rec.ns);
        a->job = rec.job;
        a->node = rec.pid.node;
        a->proc = rec.pid.proc;
        a->restarts = rec.restarts;
        a->detached = rec.detached;
        a->start_ms = rec.start_ms;
        a->end_ms = rec.end_ms;
        snprintf(a->reason, sizeof a->reason, "%s", rec.reason);
    }
    ra_msg_unref(&rep);
    if (rc != 0) {
        free(list);
        return rc;
    }
    *out = list;
    *n = count;
    return 0;
}

const char *
ra_task_status_name(ra_task_status_t s)
{
    switch (s) {
    case RA_TASK_PENDING:
        return "PENDING";
    case RA_TASK_RUNNING:
        return "RUNNING";
    case RA_TASK_FINISHED:
        return "FINISHED";
    case RA_TASK_FAILED:
        return "FAILED";
    default:
        return "?";
    }
}

int
ra_task_list(size_t limit, ra_task_info_t **out, size_t *n)
{
    if (out == NULL || n == NULL || limit > UINT32_MAX) {
        return RA_EINVAL;
    }
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    ra_task_info_t *list = NULL;
    uint32_t count = 0, lim = (uint32_t)limit;
    int rc = gcs_list(RA__GCS_TASK_LIST, &lim, sizeof *list, (void **)&list,
                      &count, &rep, &r);
    if (rc != 0) {
        return rc;
    }
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        ra_task_info_t *t = &list[i];
        t->owner_node = ra__rb_u32(&r);
        t->owner_proc = ra__rb_u32(&r);
        t->id = ra__rb_u64(&r);
        uint8_t st = ra__rb_u8(&r);
        t->state = (ra_task_status_t)st;
        t->attempt = ra__rb_u32(&r);
        t->job = ra__rb_u64(&r);
        t->node = ra__rb_u32(&r);
        t->proc = ra__rb_u32(&r);
        t->submit_ms = (int64_t)ra__rb_u64(&r);
        t->start_ms = (int64_t)ra__rb_u64(&r);
        t->end_ms = (int64_t)ra__rb_u64(&r);
        ra__rb_str(&r, t->func, sizeof t->func);
        ra__rb_str(&r, t->name, sizeof t->name);
        ra__rb_str(&r, t->error, sizeof t->error);
        if (r.bad || st > RA_TASK_FAILED) {
            rc = RA_EBADMSG;
        }
    }
    ra_msg_unref(&rep);
    if (rc != 0) {
        free(list);
        return rc;
    }
    *out = list;
    *n = count;
    return 0;
}

int
ra_job_end(uint64_t id, ra_job_state_t state, const char *message)
{
    if (state == RA_JOB_RUNNING || state > RA_JOB_STOPPED) {
        return RA_EINVAL;
    }
    if (ra__g == NULL) {
        return RA_ECLOSED;
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_JOB_END);
    ra__wb_u64(&b, id);
    ra__wb_u8(&b, (uint8_t)state);
    ra__wb_str(&b, message != NULL ? message : "");
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    int rc = ra__gcs_call_status(NULL, &b, 10000, &rep, &r);
    if (rc == 0) {
        ra_msg_unref(&rep);
    }
    return rc;
}

// ---- workers ----

static const char *
worker_state(uint8_t s)
{
    static const char *const names[] = {"STARTING", "IDLE", "LEASED",
                                        "STOPPING"};
    return s < 4 ? names[s] : "?";
}

// workers_of appends the workers of one raylet to *list.
static int
workers_of(ra_ctx_t *scope, uint32_t node, ra_pid_t raylet,
           ra_worker_info_t **list, size_t *n, size_t *cap)
{
    ra_msg_t *m = NULL, *rep = NULL;
    uint8_t op = RA__INFO_WORKERS;
    int rc = ra_msg_new_bytes(&m, RA__T_RAYLET_INFO, &op, 1);
    if (rc == 0) {
        rc = ra__call_kept(ra__g, scope, raylet, m, 10000,
                           RA__KEPT_BACK_MS, &rep);
        ra_msg_unref(&m);
    }
    if (rc != 0) {
        return rc;
    }
    ra__rbuf_t r;
    ra__rb_init(&r, rep);
    uint32_t count = ra__rb_u32(&r);
    for (uint32_t i = 0; !r.bad && i < count && count < 1000000; i++) {
        if (*n == *cap) {
            size_t nc = *cap ? 2 * *cap : 64;
            ra_worker_info_t *nl = realloc(*list, nc * sizeof *nl);
            if (nl == NULL) {
                ra_msg_unref(&rep);
                return RA_ENOMEM;
            }
            *list = nl;
            *cap = nc;
        }
        ra_worker_info_t *w = &(*list)[*n];
        memset(w, 0, sizeof *w);
        w->node = node;
        w->pid = ra__rb_u32(&r);
        w->state = worker_state(ra__rb_u8(&r));
        uint8_t registered = ra__rb_u8(&r);
        w->dedicated = ra__rb_u8(&r) != 0;
        w->actors = ra__rb_u32(&r);
        w->driver_pid = (int64_t)ra__rb_u64(&r);
        ra__rb_str(&r, w->gpus, sizeof w->gpus);
        w->idle_ms = (int64_t)ra__rb_u64(&r);
        if (!registered) {
            w->state = "STARTING";
        }
        if (!r.bad) {
            (*n)++;
        }
    }
    rc = r.bad ? RA_EBADMSG : 0;
    ra_msg_unref(&rep);
    return rc;
}

int
ra_worker_list(ra_worker_info_t **out, size_t *n)
{
    if (out == NULL || n == NULL) {
        return RA_EINVAL;
    }
    ra_node_info_t *nodes = NULL;
    size_t nn = 0;
    int rc = ra_node_list(&nodes, &nn);
    if (rc != 0) {
        return rc;
    }
    ra_worker_info_t *list = NULL;
    size_t k = 0, cap = 0;
    ra_ctx_t *scope = NULL;
    if ((rc = ra_scope_new(ra__g->rt, &scope)) == 0) {
        for (size_t i = 0; rc == 0 && i < nn; i++) {
            if (nodes[i].alive) {
                rc = workers_of(scope, nodes[i].node, nodes[i].raylet, &list,
                                &k, &cap);
            }
        }
        ra_scope_destroy(&scope);
    }
    ra_node_list_free(nodes, nn);
    if (rc != 0) {
        free(list);
        return rc;
    }
    *out = list;
    *n = k;
    return 0;
}
