// ra_error.h - error codes and their names.
//
// Every function of librayo that can fail returns an int: 0 is success and a
// negative value is a failure.  System errors pass through as -errno (for
// example -ENOMEM); rayo's own codes below start far below any errno value so
// the two never collide.
//
// Threads: every function here is thread-safe and allocation-free.
#ifndef RA_ERROR_H
#define RA_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    RA_EBASE = -10000,
    RA_ENOPROC = RA_EBASE - 1,  // no such actor (dead, or never existed)
    RA_EFULL = RA_EBASE - 2,    // a bounded mailbox is full
    RA_ECLOSED = RA_EBASE - 3,  // the mailbox or runtime is closed
    RA_ETIMEOUT = RA_EBASE - 4, // a deadline passed first
    RA_EINVAL = RA_EBASE - 5,   // an argument is out of range or NULL
    RA_ENOMEM = RA_EBASE - 6,   // out of memory
    RA_ENOTSUP = RA_EBASE - 7,  // not supported in this build or context
    RA_EEXIT = RA_EBASE - 8,    // the calling actor was told to exit
    RA_ENOENT = RA_EBASE - 9,   // no such item (timer, monitor, name)
    RA_EBADMSG = RA_EBASE - 10, // a message is malformed or of another kind
    RA_EDEADLK = RA_EBASE - 11, // the call would wait on the caller itself
    RA_EAGAIN = RA_EBASE - 12,  // try again later (busy, restarting)
    RA_EEXIST = RA_EBASE - 13,  // already exists (name, child, link)
    RA_EALREADY = RA_EBASE - 14, // the actor already has a name / is started
    RA_ERUNNING = RA_EBASE - 15, // the child is running (delete, restart)
    RA_ERESTARTING = RA_EBASE - 16, // the child is being restarted
    RA_EBADSPEC = RA_EBASE - 17, // an invalid child spec or supervisor flag
    RA_ENOCONN = RA_EBASE - 18,  // the peer process or node is unreachable
    RA_EACCES = RA_EBASE - 19,   // refused: credentials missing or wrong
    RA_ETASK = RA_EBASE - 20,    // a remote task's function returned an error
    RA_EWORKER = RA_EBASE - 21,  // the worker process running it died
    RA_EACTOR = RA_EBASE - 22,   // the actor died (or was killed)
    RA_ECANCELED = RA_EBASE - 23, // the task was cancelled
    RA_EINFEASIBLE = RA_EBASE - 24, // no node can ever offer the resources
    RA_EOBJLOST = RA_EBASE - 25, // an object's every copy is gone
    RA_ELAST = RA_EBASE - 26
};

// ra_strerror returns a sentence describing rc: one of the codes above, a
// -errno value, or 0.  The string is static; never free it.
const char *ra_strerror(int rc);

// ra_err_name returns the symbolic name of rc ("RA_ENOPROC", "ENOMEM",
// "OK"), which is what logs and failing tests print.  The string is static.
// Unknown codes give "RA_E?".
const char *ra_err_name(int rc);

#ifdef __cplusplus
}
#endif
#endif
