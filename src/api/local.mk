# The public C API: init/shutdown, remote functions, actors, objects.
librayo_la_SOURCES += src/api/api.c
rayoinclude_HEADERS += src/api/ra_api.h
