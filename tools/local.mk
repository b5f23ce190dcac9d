# The rayo command.
bin_PROGRAMS += tools/rayo
tools_rayo_SOURCES = tools/rayo.c tools/bench_actor.c \
	tools/bench_supervisor.c tools/rayo_tool.h
tools_rayo_LDADD = librayo.la $(BSON_LIBS)
