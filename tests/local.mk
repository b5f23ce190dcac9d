# Unit and stress tests (check).  Each binary is one Suite and is in TESTS.
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/tests
TEST_LIBS = librayo.la $(CHECK_LIBS) $(BSON_LIBS)

check_PROGRAMS += tests/mailbox/check_mailbox tests/actor/check_actor \
	tests/actor/check_actor_call tests/actor/check_stress
TESTS += tests/mailbox/check_mailbox tests/actor/check_actor \
	tests/actor/check_actor_call tests/actor/check_stress

tests_mailbox_check_mailbox_SOURCES = tests/mailbox/check_mailbox.c tests/testutil.h
tests_mailbox_check_mailbox_CFLAGS = $(TEST_CFLAGS)
tests_mailbox_check_mailbox_LDADD = $(TEST_LIBS)

tests_actor_check_actor_SOURCES = tests/actor/check_actor.c tests/testutil.h
tests_actor_check_actor_CFLAGS = $(TEST_CFLAGS)
tests_actor_check_actor_LDADD = $(TEST_LIBS)

tests_actor_check_stress_SOURCES = tests/actor/check_stress.c tests/testutil.h
tests_actor_check_stress_CFLAGS = $(TEST_CFLAGS)
tests_actor_check_stress_LDADD = $(TEST_LIBS)

tests_actor_check_actor_call_SOURCES = tests/actor/check_actor_call.c tests/testutil.h
tests_actor_check_actor_call_CFLAGS = $(TEST_CFLAGS)
tests_actor_check_actor_call_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/registry/check_registry tests/supervisor/check_supervisor
TESTS += tests/registry/check_registry tests/supervisor/check_supervisor
tests_registry_check_registry_SOURCES = tests/registry/check_registry.c tests/testutil.h
tests_registry_check_registry_CFLAGS = $(TEST_CFLAGS)
tests_registry_check_registry_LDADD = $(TEST_LIBS)
tests_supervisor_check_supervisor_SOURCES = tests/supervisor/check_supervisor.c tests/testutil.h
tests_supervisor_check_supervisor_CFLAGS = $(TEST_CFLAGS)
tests_supervisor_check_supervisor_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/gpu/check_topo
TESTS += tests/gpu/check_topo
tests_gpu_check_topo_SOURCES = tests/gpu/check_topo.c tests/gpu/dgx1.h tests/testutil.h
tests_gpu_check_topo_CFLAGS = $(TEST_CFLAGS)
tests_gpu_check_topo_LDADD = $(TEST_LIBS) -ldl

check_PROGRAMS += tests/gpu/check_place
TESTS += tests/gpu/check_place
tests_gpu_check_place_SOURCES = tests/gpu/check_place.c tests/testutil.h
tests_gpu_check_place_CFLAGS = $(TEST_CFLAGS)
tests_gpu_check_place_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/gpu/check_gpu_sched
TESTS += tests/gpu/check_gpu_sched
tests_gpu_check_gpu_sched_SOURCES = tests/gpu/check_gpu_sched.c tests/gpu/dgx1.h \
	tests/testutil.h
tests_gpu_check_gpu_sched_CFLAGS = $(TEST_CFLAGS)
tests_gpu_check_gpu_sched_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/gpu/check_pg
TESTS += tests/gpu/check_pg
tests_gpu_check_pg_SOURCES = tests/gpu/check_pg.c tests/gpu/dgx1.h \
	tests/testutil.h
tests_gpu_check_pg_CFLAGS = $(TEST_CFLAGS) $(HWLOC_CFLAGS)
tests_gpu_check_pg_LDADD = $(TEST_LIBS) $(HWLOC_LIBS)

# A vector add in a task on a real GPU; skipped (77) without one.
check_PROGRAMS += tests/gpu/check_cuda_task tests/gpu/vadd_probe
TESTS += tests/gpu/check_cuda_task
tests_gpu_check_cuda_task_SOURCES = tests/gpu/check_cuda_task.c \
	tests/gpu/cuda_vadd.c tests/gpu/cuda_vadd.h tests/testutil.h
tests_gpu_check_cuda_task_CFLAGS = $(TEST_CFLAGS)
tests_gpu_check_cuda_task_LDADD = $(TEST_LIBS) -ldl
tests_gpu_vadd_probe_SOURCES = tests/gpu/vadd_probe.c tests/gpu/cuda_vadd.c \
	tests/gpu/cuda_vadd.h
tests_gpu_vadd_probe_LDADD = -ldl

check_PROGRAMS += tests/store/check_table
TESTS += tests/store/check_table
tests_store_check_table_SOURCES = tests/store/check_table.c tests/testutil.h
tests_store_check_table_CFLAGS = $(TEST_CFLAGS)
tests_store_check_table_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/mailbox/check_wire
TESTS += tests/mailbox/check_wire
tests_mailbox_check_wire_SOURCES = tests/mailbox/check_wire.c tests/testutil.h
tests_mailbox_check_wire_CFLAGS = $(TEST_CFLAGS)
tests_mailbox_check_wire_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/mailbox/check_link
TESTS += tests/mailbox/check_link
tests_mailbox_check_link_SOURCES = tests/mailbox/check_link.c tests/testutil.h \
	tests/linkutil.h
tests_mailbox_check_link_CFLAGS = $(TEST_CFLAGS) $(ZMQ_CFLAGS)
tests_mailbox_check_link_LDADD = $(TEST_LIBS) $(ZMQ_LIBS)

# Three nodes in network namespaces (root only; SKIPs otherwise).
check_PROGRAMS += tests/net/check_netns
TESTS += tests/net/check_netns
tests_net_check_netns_SOURCES = tests/net/check_netns.c tests/testutil.h \
	tests/linkutil.h
tests_net_check_netns_CFLAGS = $(TEST_CFLAGS) $(ZMQ_CFLAGS)
tests_net_check_netns_LDADD = $(TEST_LIBS) $(ZMQ_LIBS)

# The rayo command's handling of bad input (a shell script).
TESTS += tests/tools/rayo_cli.sh
EXTRA_DIST += tests/tools/rayo_cli.sh

# A node daemon through the rayo command: start, drivers joining it,
# status and list, a killed driver, stop (a shell script).
TESTS += tests/tools/rayo_daemon.sh
EXTRA_DIST += tests/tools/rayo_daemon.sh

# The embedded cluster: worker processes, tasks, actors, failures.
check_PROGRAMS += tests/cluster/check_cluster
TESTS += tests/cluster/check_cluster
tests_cluster_check_cluster_SOURCES = tests/cluster/check_cluster.c tests/testutil.h
tests_cluster_check_cluster_CFLAGS = $(TEST_CFLAGS)
tests_cluster_check_cluster_LDADD = $(TEST_LIBS)

# A node daemon (ra_node_run) and drivers joining it.
check_PROGRAMS += tests/cluster/check_daemon
TESTS += tests/cluster/check_daemon
tests_cluster_check_daemon_SOURCES = tests/cluster/check_daemon.c \
	tests/testutil.h
tests_cluster_check_daemon_CFLAGS = $(TEST_CFLAGS)
tests_cluster_check_daemon_LDADD = $(TEST_LIBS)

# The driver that tests/net/cluster_netns.sh runs on a cluster of three
# nodes in network namespaces.
check_PROGRAMS += tests/cluster/multinode_driver
tests_cluster_multinode_driver_SOURCES = tests/cluster/multinode_driver.c
tests_cluster_multinode_driver_CFLAGS = $(TEST_CFLAGS)
tests_cluster_multinode_driver_LDADD = $(TEST_LIBS)
TESTS += tests/net/cluster_netns.sh tests/net/objects_netns.sh
EXTRA_DIST += tests/net/cluster_netns.sh tests/net/objects_netns.sh \
	tests/net/netns_lib.sh

check_PROGRAMS += tests/store/check_objstore
TESTS += tests/store/check_objstore
tests_store_check_objstore_SOURCES = tests/store/check_objstore.c tests/testutil.h
tests_store_check_objstore_CFLAGS = $(TEST_CFLAGS)
tests_store_check_objstore_LDADD = $(TEST_LIBS)
# A runtime-environment library that check_cluster loads into its workers.
check_LTLIBRARIES = tests/cluster/taskplugin.la
tests_cluster_taskplugin_la_SOURCES = tests/cluster/plugin.c
tests_cluster_taskplugin_la_LDFLAGS = -module -avoid-version -rpath /nowhere
tests_cluster_taskplugin_la_LIBADD = librayo.la
