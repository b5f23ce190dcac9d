# The cluster's system actors: core (owner), raylet, GCS, worker.
librayo_la_SOURCES += src/cluster/proto.c src/cluster/core.c \
	src/cluster/actor_core.c src/cluster/raylet.c src/cluster/raylet_res.c \
	src/cluster/raylet_impl.h src/cluster/gcs.c src/cluster/gcs_pg.c \
	src/cluster/gcs_jobs.c src/cluster/gcs_actors.c src/cluster/gcs_tasks.c src/cluster/objmgr.c \
	src/cluster/worker.c src/cluster/borrow.c src/cluster/cluster_impl.h \
	src/cluster/core_impl.h
