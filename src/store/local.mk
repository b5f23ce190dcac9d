librayo_la_SOURCES += src/store/table.c
rayoinclude_HEADERS += src/store/ra_table.h
# The per-node shared-memory object store.
librayo_la_SOURCES += src/store/objstore.c src/store/objstore_mem.c \
	src/store/objstore_room.c src/store/objstore_impl.h
rayoinclude_HEADERS += src/store/ra_objstore.h
