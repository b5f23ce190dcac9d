librayo_la_SOURCES += src/mailbox/error.c src/mailbox/log.c \
	src/mailbox/msg.c src/mailbox/mailbox.c src/mailbox/pool.c \
	src/mailbox/wire.c src/mailbox/link.c src/mailbox/link_dist.c \
	src/mailbox/link_sec.c src/mailbox/link_impl.h \
	src/mailbox/hmap.c src/mailbox/hmap.h \
	src/mailbox/mailbox_impl.h
rayoinclude_HEADERS += src/mailbox/ra_error.h src/mailbox/ra_log.h \
	src/mailbox/ra_msg.h src/mailbox/ra_mailbox.h \
	src/mailbox/ra_wire.h src/mailbox/ra_link.h
