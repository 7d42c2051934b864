// OpenMPI's C API for Swift: MPI_COMM_WORLD, MPI_FLOAT and MPI_SUM are macros over
// global objects that Swift cannot import, so each call we use is wrapped here.
#include <mpi.h>
#include <stdint.h>

static inline int an_mpi_init(void) {
    int provided = 0;
    // Only the main thread calls MPI (our worker pool never does).
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
}
static inline int an_mpi_initialized(void) { int f = 0; MPI_Initialized(&f); int d = 0; MPI_Finalized(&d); return f && !d; }
static inline int an_mpi_finalize(void) { return MPI_Finalize(); }
static inline int an_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int an_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }
static inline int an_mpi_allreduce_sum_f32(float *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static inline int an_mpi_allreduce_sum_f64(double *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static inline int an_mpi_allreduce_max_i64(int64_t *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
}
static inline int an_mpi_allreduce_min_i64(int64_t *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
}
static inline int an_mpi_bcast_bytes(void *buffer, int count, int root) {
    return MPI_Bcast(buffer, count, MPI_BYTE, root, MPI_COMM_WORLD);
}
static inline int an_mpi_bcast_i64(int64_t *buffer, int count, int root) {
    return MPI_Bcast(buffer, count, MPI_INT64_T, root, MPI_COMM_WORLD);
}
static inline int an_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static inline void an_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
