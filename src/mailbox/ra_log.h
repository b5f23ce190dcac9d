// ra_log.h - the library's log sink.
//
// librayo is silent until the application installs a sink.  Levels are
// syslog's (LOG_ERR = 3 ... LOG_DEBUG = 7); messages above the current level
// are dropped before formatting.
//
// Global: the sink, its user pointer and the level are process-wide,
// published with atomics; set them before starting runtimes, or at any time
// from any thread (a message races to the old or the new sink, never to
// freed state, as long as the old sink's user pointer stays valid).
#ifndef RA_LOG_H
#define RA_LOG_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    RA_LOG_ERR = 3,
    RA_LOG_WARNING = 4,
    RA_LOG_NOTICE = 5,
    RA_LOG_INFO = 6,
    RA_LOG_DEBUG = 7
};

// ra_log_sink_fn receives one formatted line (no trailing newline), the
// level and the component ("actor", "mailbox", ...).  It may be called from
// any thread, concurrently; it must not call back into rayo.
typedef void (*ra_log_sink_fn)(void *user, int level, const char *component,
                               const char *line);

// ra_log_set_sink installs sink (NULL silences the library) and its user
// pointer.  The pointer must stay valid until another sink replaces it.
void ra_log_set_sink(ra_log_sink_fn sink, void *user);

// ra_log_set_level sets the most verbose level that is passed to the sink.
// The default is RA_LOG_WARNING.
void ra_log_set_level(int level);

// ra_log_stderr is a ready-made sink that writes "rayo[component] level:
// line" to stderr.
void ra_log_stderr(void *user, int level, const char *component,
                   const char *line);

// ra_log writes one message through the current sink.
void ra_log(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ra_log_err(c, ...) ra_log(RA_LOG_ERR, (c), __VA_ARGS__)
#define ra_log_warn(c, ...) ra_log(RA_LOG_WARNING, (c), __VA_ARGS__)
#define ra_log_info(c, ...) ra_log(RA_LOG_INFO, (c), __VA_ARGS__)
#define ra_log_debug(c, ...) ra_log(RA_LOG_DEBUG, (c), __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
