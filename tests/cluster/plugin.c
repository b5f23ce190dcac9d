// plugin.c - a runtime-environment library for check_cluster: its remote
// function is not in the test program, only here, and reaches workers
// through ra_init_opts_t.libs.
#include <rayo.h>

static int
plugin_triple(ra_task_t *t)
{
    return ra_task_return_i64(t, 3 * ra_task_arg_i64(t, 0));
}
RA_REMOTE_REGISTER(plugin_triple)
