// rayo.h - the umbrella header of librayo.
//
// Include this one header to use rayo: the actor runtime (spawn, send,
// links, monitors, timers, calls), messages and mailboxes, errors and
// logging.  Every public symbol starts with ra_ and every macro with RA_.
#ifndef RAYO_H
#define RAYO_H

#include "ra_error.h"
#include "ra_log.h"
#include "ra_msg.h"
#include "ra_mailbox.h"
#include "ra_wire.h"
#include "ra_link.h"
#include "ra_actor.h"
#include "ra_registry.h"
#include "ra_supervisor.h"
#include "ra_topo.h"
#include "ra_place.h"
#include "ra_table.h"
#include "ra_objstore.h"
#include "ra_api.h"

// RA_VERSION is the library version as a string.
#define RA_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

// ra_version returns the version the library was built as.
const char *ra_version(void);

#ifdef __cplusplus
}
#endif
#endif
