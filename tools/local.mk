# The rayo command.
bin_PROGRAMS += tools/rayo
tools_rayo_SOURCES = tools/rayo.c tools/bench_actor.c \
	tools/bench_link.c tools/bench_supervisor.c tools/rayo_tool.h
# The harness every `rayo bench` command shares: options, help, clocks,
# medians, and the one-line-per-workload loop of core and pg.
tools_rayo_SOURCES += tools/bench_util.c tools/bench_util.h
# bench_link.c measures bare libzmq beside rayo, so it links libzmq itself.
tools_rayo_LDADD = librayo.la $(BSON_LIBS) $(ZMQ_LIBS)
# `rayo bench store`: the shared-memory object store, and (bench_xfer.c)
# objects copied between two nodes beside bare libzmq tcp.
tools_rayo_SOURCES += tools/bench_store.c tools/bench_xfer.c
# `rayo bench core`: the cluster API, like `ray microbenchmark`.
tools_rayo_SOURCES += tools/bench_core.c
# `rayo bench pg`: placement groups (ra_place.h).
tools_rayo_SOURCES += tools/bench_pg.c
# `rayo topo`: the topology placement sees (src/gpu/ra_topo.h).
tools_rayo_SOURCES += tools/topo_cmd.c
# `rayo start`, `rayo stop`: the node daemon (ra_node_run).
tools_rayo_SOURCES += tools/node_cmd.c
# `rayo status`, `rayo list`: a running cluster's state.
tools_rayo_SOURCES += tools/status_cmd.c
# `rayo job`: programs run on a cluster as jobs.
tools_rayo_SOURCES += tools/job_cmd.c
# `rayo logs`, and what the commands on a running cluster share.
tools_rayo_SOURCES += tools/logs_cmd.c tools/cluster_tool.c
