/* The two nearest neighbours of 256-bit binary descriptors (ORB) among hash-table candidates.

   wit.imagehash.lsh.HammingLSH builds the tables in numpy: table t keys every indexed descriptor by
   its 16-bit word t; ``ids`` lists descriptor rows grouped by (table, key), ``offsets`` where each
   group starts. For each query this walks its own bucket in every table and keeps the two nearest
   distinct rows (ties: the lower row), which is what the numpy fallback in lsh.py computes. An
   optional extension: without a C compiler the fallback gives the same answers, slower.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* x86-64 without -mpopcnt turns __builtin_popcountll into a library call; a clone of the search
   built for the POPCNT instruction, picked at load time where the CPU has it, halves the time. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define POPCNT_CLONES
#endif

#define DESC_BYTES 32
#define KEYS_PER_TABLE 65536

static inline int hamming256(const unsigned char *a, const unsigned char *b) {
    uint64_t x[4], y[4];
    memcpy(x, a, DESC_BYTES);
    memcpy(y, b, DESC_BYTES);
    return __builtin_popcountll(x[0] ^ y[0]) + __builtin_popcountll(x[1] ^ y[1]) +
           __builtin_popcountll(x[2] ^ y[2]) + __builtin_popcountll(x[3] ^ y[3]);
}

POPCNT_CLONES static void search(const unsigned char *index, const int32_t *ids, const int64_t *offsets,
                   const unsigned char *queries, Py_ssize_t m, int tables, int32_t *out_dist,
                   int64_t *out_idx) {
    for (Py_ssize_t qi = 0; qi < m; qi++) {
        const unsigned char *q = queries + qi * DESC_BYTES;
        int d0 = 257, d1 = 257;
        int64_t b0 = -1, b1 = -1;
        for (int t = 0; t < tables; t++) {
            /* word t of the descriptor, in the machine's byte order (numpy's view(uint16) agrees) */
            uint16_t key;
            memcpy(&key, q + 2 * t, 2);
            int64_t slot = (int64_t)t * KEYS_PER_TABLE + key;
            for (int64_t p = offsets[slot]; p < offsets[slot + 1]; p++) {
                int64_t c = ids[p];
                if (c == b0 || c == b1)
                    continue;
                int d = hamming256(q, index + c * DESC_BYTES);
                if (d < d0 || (d == d0 && c < b0)) {
                    d1 = d0; b1 = b0; d0 = d; b0 = c;
                } else if (d < d1 || (d == d1 && c < b1)) {
                    d1 = d; b1 = c;
                }
            }
        }
        out_dist[2 * qi] = d0;
        out_dist[2 * qi + 1] = d1;
        out_idx[2 * qi] = b0;
        out_idx[2 * qi + 1] = b1;
    }
}

/* knn2(index, ids, offsets, queries, tables, out_dist, out_idx): buffers of uint8 (n, 32), int32
   (tables * n), int64 (tables * 65536 + 1), uint8 (m, 32); writes int32 (m, 2) and int64 (m, 2). */
static PyObject *knn2(PyObject *self, PyObject *args) {
    Py_buffer ix, ids, off, q, od, oi;
    int tables;
    if (!PyArg_ParseTuple(args, "y*y*y*y*iw*w*", &ix, &ids, &off, &q, &tables, &od, &oi))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = ix.len / DESC_BYTES, m = q.len / DESC_BYTES;
    if (tables < 1 || tables > DESC_BYTES / 2 || ix.len % DESC_BYTES || q.len % DESC_BYTES ||
        ids.len != (Py_ssize_t)sizeof(int32_t) * n * tables ||
        off.len != (Py_ssize_t)sizeof(int64_t) * ((Py_ssize_t)tables * KEYS_PER_TABLE + 1) ||
        od.len != (Py_ssize_t)sizeof(int32_t) * 2 * m || oi.len != (Py_ssize_t)sizeof(int64_t) * 2 * m) {
        PyErr_SetString(PyExc_ValueError, "knn2: buffer sizes do not agree");
        goto done;
    }
    /* The buckets must cover ids exactly; that every id names an indexed row and the offsets ascend
       is lsh.py's to keep (it builds both from the descriptors and never loads them). */
    const int64_t *offsets = (const int64_t *)off.buf;
    const int32_t *idp = (const int32_t *)ids.buf;
    if (offsets[0] != 0 || offsets[(Py_ssize_t)tables * KEYS_PER_TABLE] != n * tables) {
        PyErr_SetString(PyExc_ValueError, "knn2: offsets do not cover ids");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    search((const unsigned char *)ix.buf, idp, offsets, (const unsigned char *)q.buf, m, tables,
           (int32_t *)od.buf, (int64_t *)oi.buf);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&ix);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&off);
    PyBuffer_Release(&q);
    PyBuffer_Release(&od);
    PyBuffer_Release(&oi);
    return result;
}

static PyMethodDef methods[] = {
    {"knn2", knn2, METH_VARARGS, "The two nearest indexed descriptors of each query (see lsh.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hamming", NULL, -1, methods};

PyMODINIT_FUNC PyInit__hamming(void) { return PyModule_Create(&module); }
