librayo_la_SOURCES += src/store/table.c
rayoinclude_HEADERS += src/store/ra_table.h
