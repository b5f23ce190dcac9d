# Runnable examples that are also tests.
noinst_PROGRAMS += apps/pingpong
apps_pingpong_SOURCES = apps/pingpong.c
apps_pingpong_LDADD = librayo.la $(BSON_LIBS)
TESTS += apps/pingpong

noinst_PROGRAMS += apps/supervised
apps_supervised_SOURCES = apps/supervised.c
apps_supervised_LDADD = librayo.la $(BSON_LIBS)
TESTS += apps/supervised

noinst_PROGRAMS += apps/quickstart
apps_quickstart_SOURCES = apps/quickstart.c
apps_quickstart_LDADD = librayo.la $(BSON_LIBS)
TESTS += apps/quickstart

noinst_PROGRAMS += apps/bigarray
apps_bigarray_SOURCES = apps/bigarray.c
apps_bigarray_LDADD = librayo.la $(BSON_LIBS)
TESTS += apps/bigarray

noinst_PROGRAMS += apps/paramserver
apps_paramserver_SOURCES = apps/paramserver.c
apps_paramserver_LDADD = librayo.la $(BSON_LIBS) -lm
TESTS += apps/paramserver
