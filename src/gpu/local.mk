# The topology module: hwloc, GPU inventory files, placement scoring, and
# a GPU probe chosen by configure (CUDA driver loaded at run time, or none).
librayo_la_SOURCES += src/gpu/topo.c src/gpu/inventory.c src/gpu/pick.c \
	src/gpu/gpu_impl.h
rayoinclude_HEADERS += src/gpu/ra_topo.h
# Placement-group bundles on nodes: pure, no hwloc.
librayo_la_SOURCES += src/gpu/place.c
rayoinclude_HEADERS += src/gpu/ra_place.h
if HAVE_CUDA
librayo_la_SOURCES += src/gpu/gpu_cuda.c
AM_CPPFLAGS += $(CUDA_CPPFLAGS)
else
librayo_la_SOURCES += src/gpu/gpu_none.c
endif
