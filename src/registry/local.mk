librayo_la_SOURCES += src/registry/registry.c
rayoinclude_HEADERS += src/registry/ra_registry.h
