librayo_la_SOURCES += src/supervisor/supervisor.c src/supervisor/sup_impl.h \
	src/supervisor/osproc.c src/supervisor/forksrv.c
rayoinclude_HEADERS += src/supervisor/ra_supervisor.h
