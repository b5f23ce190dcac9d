librayo_la_SOURCES += src/actor/runtime.c src/actor/sched.c \
	src/actor/actor.c src/actor/timer.c src/actor/call.c \
	src/actor/actor_impl.h
rayoinclude_HEADERS += src/actor/ra_actor.h
