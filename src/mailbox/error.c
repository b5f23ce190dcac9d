// error.c - names and sentences for error codes.
#include <errno.h>
#include <string.h>

#include "ra_error.h"

static const struct {
    int code;
    const char *name;
    const char *text;
} ra_errors[] = {
    {0, "OK", "success"},
    {RA_ENOPROC, "RA_ENOPROC", "no such actor (it ended or never existed)"},
    {RA_EFULL, "RA_EFULL",
     "full: a bounded mailbox, or a table store's map (raise its map size)"},
    {RA_ECLOSED, "RA_ECLOSED", "the mailbox or runtime is closed"},
    {RA_ETIMEOUT, "RA_ETIMEOUT", "the operation timed out"},
    {RA_EINVAL, "RA_EINVAL", "invalid argument"},
    {RA_ENOMEM, "RA_ENOMEM", "out of memory"},
    {RA_ENOTSUP, "RA_ENOTSUP", "not supported in this build or context"},
    {RA_EEXIT, "RA_EEXIT", "the calling actor was ended by an exit signal"},
    {RA_ENOENT, "RA_ENOENT", "no such item"},
    {RA_EBADMSG, "RA_EBADMSG", "malformed message or wrong message kind"},
    {RA_EDEADLK, "RA_EDEADLK", "the call would wait on the caller itself"},
    {RA_EAGAIN, "RA_EAGAIN", "resource busy, try again"},
    {RA_EEXIST, "RA_EEXIST", "already exists"},
    {RA_EALREADY, "RA_EALREADY",
     "already done (the actor has a name, the child is started)"},
    {RA_ERUNNING, "RA_ERUNNING", "the child is running: terminate it first"},
    {RA_ERESTARTING, "RA_ERESTARTING",
     "the child is being restarted: try again later"},
    {RA_EBADSPEC, "RA_EBADSPEC",
     "invalid child spec or supervisor flags (see the log for the field)"},
    {RA_ENOCONN, "RA_ENOCONN",
     "no connection to the peer process or node (lost, or no route to it)"},
    {RA_EACCES, "RA_EACCES",
     "refused: the cluster certificate is missing, wrong or not private"},
    {RA_ETASK, "RA_ETASK",
     "the remote task's function failed (ra_value_error says how)"},
    {RA_EWORKER, "RA_EWORKER",
     "the worker process running the task died and no retries were left"},
    {RA_EACTOR, "RA_EACTOR",
     "the actor died or was killed and was not restarted"},
    {RA_ECANCELED, "RA_ECANCELED", "the task was cancelled"},
    {RA_EINFEASIBLE, "RA_EINFEASIBLE",
     "no node offers the resources asked for (see rayo status)"},
    {RA_EOBJLOST, "RA_EOBJLOST",
     "the object was lost: no node has a copy (ra_value_error says why)"},
};

static const struct {
    int err;
    const char *name;
} errno_names[] = {
    {EPERM, "EPERM"},   {ENOENT, "ENOENT"},   {EINTR, "EINTR"},
    {EIO, "EIO"},       {EBADF, "EBADF"},     {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"}, {EACCES, "EACCES"},   {EEXIST, "EEXIST"},
    {EINVAL, "EINVAL"}, {ENOSPC, "ENOSPC"},   {EPIPE, "EPIPE"},
    {ERANGE, "ERANGE"}, {ETIMEDOUT, "ETIMEDOUT"},
    {ECONNREFUSED, "ECONNREFUSED"}, {EMSGSIZE, "EMSGSIZE"},
    {EADDRINUSE, "EADDRINUSE"}, {ENOTSUP, "ENOTSUP"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *
ra_strerror(int rc)
{
    for (size_t i = 0; i < COUNT(ra_errors); i++) {
        if (ra_errors[i].code == rc) {
            return ra_errors[i].text;
        }
    }
    if (rc < 0 && rc > RA_EBASE) {
        // strerror's buffer is static but its contents for valid errno
        // values are constant strings in glibc, which is all we return.
        return strerror(-rc);
    }
    return "unknown error";
}

const char *
ra_err_name(int rc)
{
    for (size_t i = 0; i < COUNT(ra_errors); i++) {
        if (ra_errors[i].code == rc) {
            return ra_errors[i].name;
        }
    }
    for (size_t i = 0; i < COUNT(errno_names); i++) {
        if (-errno_names[i].err == rc) {
            return errno_names[i].name;
        }
    }
    return rc < 0 && rc > RA_EBASE ? "E?" : "RA_E?";
}
