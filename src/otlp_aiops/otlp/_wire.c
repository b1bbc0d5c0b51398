/*
 * _wire: decode OTLP spans and log records straight from protobuf wire bytes (or OTLP/JSON text)
 * into the batches of otlp_aiops.otlp.batches (SpanBatch / LogBatch): into their column buffers
 * (Cols rows, IdBuf / StrBuf attributes; no Python object per value) when the batch has them, or
 * into row tuples and flat attribute lists (the lists the pure-Python decoder fills) otherwise.
 *
 * Why: with the upb backend, parsing is fast but every field read from Python creates an object;
 * a span with a dozen attributes costs ~10 us in Python, almost all of it in those reads. This
 * module reads the bytes once and builds only the objects the batch keeps.
 *
 * Semantics follow protobuf: the last occurrence of a scalar field wins; a field whose wire type
 * does not match the schema is an unknown field (counted, skipped); repeated occurrences of a
 * singular message field merge, which for AnyValue is handled by parsing the concatenated
 * occurrences in Python (the `fallback` callable), like every composite AnyValue (array, kvlist,
 * bytes, strindex). A record that breaks an ingest rule (id length, enum range, timestamp beyond
 * int64, invalid UTF-8) is rolled back and reported in `errors`; malformed wire format in a record
 * is reported the same way. Only Python errors (memory) propagate as exceptions.
 *
 * The pure-Python decoder in decode_proto.py is the reference; tests run both on the same inputs.
 * The protobuf reading and AnyValue helpers are in _wire_pb.h, shared with _wire_metrics.c.
 */
#include "_wire_json.h" /* _wire_pb.h (Python.h, stdint.h, string.h, math.h), the JSON text tokenizer */

/* ---------------------------------------------------------------------------------------------- */
/* column buffers: attribute key ids and value strings written straight into growable C arrays
 * (IdBuf: int32; StrBuf: UTF-8 data + int64 offsets + one validity byte per value), which Python
 * wraps into Arrow arrays once per batch (batches.BufAttrCols). They also take Python appends
 * (append / extend, as on a list), so the pure-Python decoder can fill the same batch when a
 * record falls back to it, and they read back like a list (len, index, iteration). */

typedef struct {
    PyObject_HEAD
    int32_t *p;
    Py_ssize_t n, cap;
    uint64_t serial; /* unique per IdBuf: the key cache remembers ids per serial */
} IdBuf;

static uint64_t idbuf_serials;

typedef struct {
    PyObject_HEAD
    int64_t *off; /* n + 1 entries */
    uint8_t *valid;
    char *data;
    Py_ssize_t n, cap, len, dcap, nulls;
} StrBuf;

static PyTypeObject IdBufType, StrBufType;

static int idbuf_push(IdBuf *b, int32_t v) {
    if (b->n == b->cap && grow((void **)&b->p, &b->cap, b->n + 1, sizeof(int32_t), 256) < 0) return -1;
    b->p[b->n++] = v;
    return 0;
}

static int strbuf_reserve(StrBuf *b, Py_ssize_t dn) {
    if (b->n + 2 > b->cap) {
        Py_ssize_t c1 = b->cap, c2 = b->cap;
        if (grow((void **)&b->off, &c1, b->n + 2, sizeof(int64_t), 256) < 0) return -1;
        if (grow((void **)&b->valid, &c2, b->n + 2, 1, 256) < 0) return -1;
        b->cap = c1 < c2 ? c1 : c2;
    }
    if (b->len + dn > b->dcap && grow((void **)&b->data, &b->dcap, b->len + dn, 1, 256) < 0) return -1;
    return 0;
}

/* Append valid UTF-8 bytes (p may be NULL for None). */
static int strbuf_push(StrBuf *b, const char *p, Py_ssize_t n) {
    if (strbuf_reserve(b, p ? n : 0) < 0) return -1;
    if (p) {
        if (n) memcpy(b->data + b->len, p, n);
        b->len += n;
        b->valid[b->n] = 1;
    } else {
        b->valid[b->n] = 0;
        b->nulls++;
    }
    b->n++;
    b->off[b->n] = b->len;
    return 0;
}

/* Append a str or None. */
static int strbuf_push_obj(StrBuf *b, PyObject *s) {
    if (s == Py_None) return strbuf_push(b, NULL, 0);
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "StrBuf takes str or None, not %.100s", Py_TYPE(s)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (!p) { /* lone surrogates: as pa.array would, refuse */
        return -1;
    }
    return strbuf_push(b, p, n);
}

static void strbuf_truncate(StrBuf *b, Py_ssize_t n) {
    if (n < 0) n = 0;
    while (b->n > n) {
        b->n--;
        if (!b->valid[b->n]) b->nulls--;
    }
    b->len = b->off[b->n];
}

/* Spare storage of dead buffers: a batch's buffers die when it is written and the next batch's
 * grow to the same sizes, so a new buffer takes a dead one's memory (already faulted in) instead
 * of growing from 256 again. A few of each kind, each at most SPARE_MAX bytes; what does not fit is
 * freed. */
#define SPARE_SLOTS 4
#define SPARE_MAX ((Py_ssize_t)16 << 20)

static struct {
    int32_t *p;
    Py_ssize_t cap;
} id_spare[SPARE_SLOTS];
static int id_nspare;

static PyObject *idbuf_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    IdBuf *b = (IdBuf *)type->tp_alloc(type, 0);
    if (!b) return NULL;
    b->serial = ++idbuf_serials;
    if (id_nspare) {
        id_nspare--;
        b->p = id_spare[id_nspare].p;
        b->cap = id_spare[id_nspare].cap;
    }
    return (PyObject *)b;
}

static void idbuf_dealloc(IdBuf *b) {
    if (b->p && id_nspare < SPARE_SLOTS && b->cap * 4 <= SPARE_MAX) {
        id_spare[id_nspare].p = b->p;
        id_spare[id_nspare].cap = b->cap;
        id_nspare++;
    } else {
        PyMem_Free(b->p);
    }
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static Py_ssize_t idbuf_len(IdBuf *b) { return b->n; }

static PyObject *idbuf_item(IdBuf *b, Py_ssize_t i) {
    if (i < 0 || i >= b->n) {
        PyErr_SetString(PyExc_IndexError, "IdBuf index out of range");
        return NULL;
    }
    return PyLong_FromLong(b->p[i]);
}

/* buf.extend(iterable): push(buf, item) for each item, as list.extend would append them. */
static PyObject *extend_each(void *b, PyObject *it, int (*push)(void *, PyObject *)) {
    PyObject *iter = PyObject_GetIter(it), *o;
    if (!iter) return NULL;
    while ((o = PyIter_Next(iter))) {
        int rc = push(b, o);
        Py_DECREF(o);
        if (rc < 0) {
            Py_DECREF(iter);
            return NULL;
        }
    }
    Py_DECREF(iter);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static int idbuf_push_obj(IdBuf *b, PyObject *o) {
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0 || v > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "key id out of int32 range");
        return -1;
    }
    return idbuf_push(b, (int32_t)v);
}

static PyObject *idbuf_append(IdBuf *b, PyObject *o) {
    if (idbuf_push_obj(b, o) < 0) return NULL;
    Py_RETURN_NONE;
}

static int idbuf_push_any(void *b, PyObject *o) { return idbuf_push_obj((IdBuf *)b, o); }

static PyObject *idbuf_extend(IdBuf *b, PyObject *it) { return extend_each(b, it, idbuf_push_any); }

static PyObject *idbuf_truncate(IdBuf *b, PyObject *o) {
    Py_ssize_t n = PyLong_AsSsize_t(o);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n >= 0 && n < b->n) b->n = n;
    Py_RETURN_NONE;
}

static PyObject *idbuf_tobytes(IdBuf *b, PyObject *unused) {
    return PyBytes_FromStringAndSize((const char *)b->p, b->n * (Py_ssize_t)sizeof(int32_t));
}

static PyMethodDef idbuf_methods[] = {
    {"append", (PyCFunction)idbuf_append, METH_O, "Append a key id (int)."},
    {"extend", (PyCFunction)idbuf_extend, METH_O, "Append key ids from an iterable."},
    {"truncate", (PyCFunction)idbuf_truncate, METH_O, "Keep the first n ids."},
    {"tobytes", (PyCFunction)idbuf_tobytes, METH_NOARGS, "The ids as little-endian int32 bytes."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods idbuf_seq = {.sq_length = (lenfunc)idbuf_len, .sq_item = (ssizeargfunc)idbuf_item};

static PyTypeObject IdBufType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "otlp_aiops.otlp._wire.IdBuf",
    .tp_basicsize = sizeof(IdBuf),
    .tp_dealloc = (destructor)idbuf_dealloc,
    .tp_as_sequence = &idbuf_seq,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A growable int32 column (attribute key ids), appended to like a list.",
    .tp_methods = idbuf_methods,
    .tp_new = idbuf_new,
};

/* The storage of a StrBuf (also a Cols string column) goes to the spares, or is freed. */
static struct {
    int64_t *off;
    uint8_t *valid;
    char *data;
    Py_ssize_t cap, dcap;
} sb_spare[SPARE_SLOTS];
static int sb_nspare;

static void strbuf_release(StrBuf *b) {
    if (b->off && b->valid && sb_nspare < SPARE_SLOTS && b->cap * 9 + b->dcap <= SPARE_MAX) {
        sb_spare[sb_nspare].off = b->off;
        sb_spare[sb_nspare].valid = b->valid;
        sb_spare[sb_nspare].data = b->data;
        sb_spare[sb_nspare].cap = b->cap;
        sb_spare[sb_nspare].dcap = b->dcap;
        sb_nspare++;
    } else {
        PyMem_Free(b->off);
        PyMem_Free(b->valid);
        PyMem_Free(b->data);
    }
    b->off = NULL;
    b->valid = NULL;
    b->data = NULL;
}

/* An empty StrBuf's storage: a spare's, or newly reserved. */
static int strbuf_init_storage(StrBuf *b) {
    b->n = b->len = b->nulls = 0;
    if (sb_nspare) {
        sb_nspare--;
        b->off = sb_spare[sb_nspare].off;
        b->valid = sb_spare[sb_nspare].valid;
        b->data = sb_spare[sb_nspare].data;
        b->cap = sb_spare[sb_nspare].cap;
        b->dcap = sb_spare[sb_nspare].dcap;
    } else if (strbuf_reserve(b, 0) < 0) {
        return -1;
    }
    b->off[0] = 0;
    return 0;
}

static PyObject *strbuf_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    StrBuf *b = (StrBuf *)type->tp_alloc(type, 0);
    if (!b) return NULL;
    if (strbuf_init_storage(b) < 0) {
        Py_DECREF(b);
        return NULL;
    }
    return (PyObject *)b;
}

static void strbuf_dealloc(StrBuf *b) {
    strbuf_release(b);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static Py_ssize_t strbuf_len(StrBuf *b) { return b->n; }

static PyObject *strbuf_item(StrBuf *b, Py_ssize_t i) {
    if (i < 0 || i >= b->n) {
        PyErr_SetString(PyExc_IndexError, "StrBuf index out of range");
        return NULL;
    }
    if (!b->valid[i]) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(b->data + b->off[i], (Py_ssize_t)(b->off[i + 1] - b->off[i]), NULL);
}

static PyObject *strbuf_append(StrBuf *b, PyObject *o) {
    if (strbuf_push_obj(b, o) < 0) return NULL;
    Py_RETURN_NONE;
}

static int strbuf_push_any(void *b, PyObject *o) { return strbuf_push_obj((StrBuf *)b, o); }

static PyObject *strbuf_extend(StrBuf *b, PyObject *it) { return extend_each(b, it, strbuf_push_any); }

static PyObject *strbuf_truncate_m(StrBuf *b, PyObject *o) {
    Py_ssize_t n = PyLong_AsSsize_t(o);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n >= 0 && n < b->n) strbuf_truncate(b, n);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(strbuf_export_doc,
             "export() -> (offsets, data, validity, null_count, offset_width): the buffers of an Arrow\n"
             "string column (offset_width 4: int32 offsets, pa.string()) or, past 2 GiB of data, of a\n"
             "large_string one (offset_width 8); validity is None without nulls, else an LSB-first bitmap.");

static PyObject *strbuf_export(StrBuf *b, PyObject *unused) {
    PyObject *offs, *data, *valid = NULL;
    int width = b->len <= INT32_MAX ? 4 : 8;
    if (width == 4) {
        offs = PyBytes_FromStringAndSize(NULL, (b->n + 1) * 4);
        if (!offs) return NULL;
        int32_t *q = (int32_t *)PyBytes_AS_STRING(offs);
        for (Py_ssize_t i = 0; i <= b->n; i++) q[i] = (int32_t)b->off[i];
    } else {
        offs = PyBytes_FromStringAndSize((const char *)b->off, (b->n + 1) * 8);
        if (!offs) return NULL;
    }
    data = PyBytes_FromStringAndSize(b->data, b->len);
    if (!data) {
        Py_DECREF(offs);
        return NULL;
    }
    if (b->nulls) {
        Py_ssize_t nb = (b->n + 7) / 8;
        valid = PyBytes_FromStringAndSize(NULL, nb);
        if (!valid) {
            Py_DECREF(offs);
            Py_DECREF(data);
            return NULL;
        }
        uint8_t *v = (uint8_t *)PyBytes_AS_STRING(valid);
        memset(v, 0, nb);
        for (Py_ssize_t i = 0; i < b->n; i++)
            if (b->valid[i]) v[i >> 3] |= (uint8_t)(1u << (i & 7));
    } else {
        valid = Py_None;
        Py_INCREF(valid);
    }
    return Py_BuildValue("(NNNni)", offs, data, valid, b->nulls, width);
}

static PyMethodDef strbuf_methods[] = {
    {"append", (PyCFunction)strbuf_append, METH_O, "Append a str or None."},
    {"extend", (PyCFunction)strbuf_extend, METH_O, "Append strs or Nones from an iterable."},
    {"truncate", (PyCFunction)strbuf_truncate_m, METH_O, "Keep the first n values."},
    {"export", (PyCFunction)strbuf_export, METH_NOARGS, strbuf_export_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods strbuf_seq = {.sq_length = (lenfunc)strbuf_len, .sq_item = (ssizeargfunc)strbuf_item};

static PyTypeObject StrBufType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "otlp_aiops.otlp._wire.StrBuf",
    .tp_basicsize = sizeof(StrBuf),
    .tp_dealloc = (destructor)strbuf_dealloc,
    .tp_as_sequence = &strbuf_seq,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A growable column of optional UTF-8 strings (attribute values), appended to like a list.",
    .tp_methods = strbuf_methods,
    .tp_new = strbuf_new,
};

/* Rows as columns (Cols): a record's fields written straight into per-column buffers instead of a
 * tuple in a list. Format characters, one per column: 'i' int64, 's' optional UTF-8 string (a
 * StrBuf), 'h' / 'H' optional 8- / 16-byte id (zero-filled when None). C writes a row with
 * cols_reserve, one cols_* call per column, then cols_commit; Python appends tuples and reads
 * rows back as tuples, so a batch can mix both. */

#define COLS_MAX 24

typedef struct {
    char kind;
    int64_t *iv;       /* 'i' */
    uint8_t *fb;       /* 'h', 'H': width bytes a row */
    uint8_t *fvalid;   /* 'h', 'H' */
    Py_ssize_t fnulls; /* 'h', 'H' */
    int width;
    StrBuf sb; /* 's' (its object header unused) */
} Col;

typedef struct {
    PyObject_HEAD
    int ncols;
    Py_ssize_t n, cap;
    Col c[COLS_MAX];
} Cols;

static PyTypeObject ColsType;

static int cols_reserve(Cols *r) {
    if (r->n < r->cap) return 0;
    Py_ssize_t nc = r->cap ? r->cap * 2 : 1024;
    for (int j = 0; j < r->ncols; j++) {
        Col *c = &r->c[j];
        if (c->kind == 'i') {
            int64_t *q = PyMem_Realloc(c->iv, (size_t)nc * 8);
            if (!q) goto nomem;
            c->iv = q;
        } else if (c->kind != 's') {
            uint8_t *q = PyMem_Realloc(c->fb, (size_t)nc * c->width);
            if (!q) goto nomem;
            c->fb = q;
            q = PyMem_Realloc(c->fvalid, (size_t)nc);
            if (!q) goto nomem;
            c->fvalid = q;
        }
    }
    r->cap = nc;
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
}

static inline void cols_i(Cols *r, int j, int64_t v) { r->c[j].iv[r->n] = v; }

static inline int cols_s(Cols *r, int j, const uint8_t *p, Py_ssize_t n) {
    return strbuf_push(&r->c[j].sb, (const char *)p, n);
}

static inline void cols_id(Cols *r, int j, const uint8_t *p) {
    Col *c = &r->c[j];
    if (p) {
        memcpy(c->fb + r->n * c->width, p, c->width);
        c->fvalid[r->n] = 1;
    } else {
        memset(c->fb + r->n * c->width, 0, c->width);
        c->fvalid[r->n] = 0;
        c->fnulls++;
    }
}

static void cols_truncate(Cols *r, Py_ssize_t n) {
    if (n < 0) n = 0;
    for (int j = 0; j < r->ncols; j++) {
        Col *c = &r->c[j];
        if (c->kind == 's') {
            if (c->sb.n > n) strbuf_truncate(&c->sb, n);
        } else if (c->kind != 'i') {
            for (Py_ssize_t i = n; i < r->n; i++) c->fnulls -= !c->fvalid[i];
        }
    }
    if (n < r->n) r->n = n;
}

static inline void cols_commit(Cols *r) { r->n++; }

static PyObject *cols_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    const char *fmt;
    if (!PyArg_ParseTuple(args, "s", &fmt)) return NULL;
    int nc = (int)strlen(fmt);
    if (nc < 1 || nc > COLS_MAX) {
        PyErr_SetString(PyExc_ValueError, "Cols: 1 to 24 columns");
        return NULL;
    }
    for (int j = 0; j < nc; j++) {
        if (!strchr("ishH", fmt[j])) {
            PyErr_Format(PyExc_ValueError, "Cols: unknown column format %c", fmt[j]);
            return NULL;
        }
    }
    Cols *r = (Cols *)type->tp_alloc(type, 0);
    if (!r) return NULL;
    r->ncols = nc;
    for (int j = 0; j < nc; j++) {
        Col *c = &r->c[j];
        c->kind = fmt[j];
        c->width = fmt[j] == 'h' ? 8 : fmt[j] == 'H' ? 16 : 0;
        if (c->kind == 's' && strbuf_init_storage(&c->sb) < 0) {
            Py_DECREF(r);
            return NULL;
        }
    }
    return (PyObject *)r;
}

static void cols_dealloc(Cols *r) {
    for (int j = 0; j < r->ncols; j++) {
        Col *c = &r->c[j];
        PyMem_Free(c->iv);
        PyMem_Free(c->fb);
        PyMem_Free(c->fvalid);
        if (c->kind == 's') strbuf_release(&c->sb);
    }
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static Py_ssize_t cols_len(Cols *r) { return r->n; }

static PyObject *cols_item(Cols *r, Py_ssize_t i) {
    if (i < 0 || i >= r->n) {
        PyErr_SetString(PyExc_IndexError, "Cols index out of range");
        return NULL;
    }
    PyObject *t = PyTuple_New(r->ncols);
    if (!t) return NULL;
    for (int j = 0; j < r->ncols; j++) {
        Col *c = &r->c[j];
        PyObject *v;
        if (c->kind == 'i') v = PyLong_FromLongLong(c->iv[i]);
        else if (c->kind == 's') v = strbuf_item(&c->sb, i);
        else if (c->fvalid[i]) v = PyBytes_FromStringAndSize((const char *)c->fb + i * c->width, c->width);
        else v = Py_NewRef(Py_None);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, j, v);
    }
    return t;
}

/* Append a row given as a tuple (the Python decoders' rows). */
static int cols_append_tuple(Cols *r, PyObject *t) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != r->ncols) {
        PyErr_Format(PyExc_TypeError, "Cols: a row must be a tuple of %d", r->ncols);
        return -1;
    }
    if (cols_reserve(r) < 0) return -1;
    for (int j = 0; j < r->ncols; j++) {
        Col *c = &r->c[j];
        PyObject *v = PyTuple_GET_ITEM(t, j);
        if (c->kind == 'i') {
            long long x = PyLong_AsLongLong(v);
            if (x == -1 && PyErr_Occurred()) goto fail;
            c->iv[r->n] = x;
        } else if (c->kind == 's') {
            if (strbuf_push_obj(&c->sb, v) < 0) goto fail;
        } else if (v == Py_None) {
            cols_id(r, j, NULL);
        } else {
            if (!PyBytes_Check(v) || PyBytes_GET_SIZE(v) != c->width) {
                PyErr_Format(PyExc_TypeError, "Cols: column %d takes %d bytes or None", j, c->width);
                goto fail;
            }
            cols_id(r, j, (const uint8_t *)PyBytes_AS_STRING(v));
        }
    }
    cols_commit(r);
    return 0;
fail:
    cols_truncate(r, r->n); /* the strings pushed for this row */
    return -1;
}

static PyObject *cols_append(Cols *r, PyObject *t) {
    if (cols_append_tuple(r, t) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *cols_truncate_m(Cols *r, PyObject *o) {
    Py_ssize_t n = PyLong_AsSsize_t(o);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n >= 0 && n < r->n) cols_truncate(r, n);
    Py_RETURN_NONE;
}

static PyObject *bitmap(const uint8_t *valid, Py_ssize_t n) {
    Py_ssize_t nb = (n + 7) / 8;
    PyObject *b = PyBytes_FromStringAndSize(NULL, nb);
    if (!b) return NULL;
    uint8_t *v = (uint8_t *)PyBytes_AS_STRING(b);
    memset(v, 0, nb);
    for (Py_ssize_t i = 0; i < n; i++)
        if (valid[i]) v[i >> 3] |= (uint8_t)(1u << (i & 7));
    return b;
}

PyDoc_STRVAR(cols_column_doc,
             "column(j): column j's buffers. 'i': int64 little-endian bytes; 's': as StrBuf.export();\n"
             "'h'/'H': (data, validity bitmap or None, null_count).");

static PyObject *cols_column(Cols *r, PyObject *o) {
    long j = PyLong_AsLong(o);
    if (j == -1 && PyErr_Occurred()) return NULL;
    if (j < 0 || j >= r->ncols) {
        PyErr_SetString(PyExc_IndexError, "Cols column out of range");
        return NULL;
    }
    Col *c = &r->c[j];
    if (c->kind == 'i') return PyBytes_FromStringAndSize((const char *)c->iv, r->n * 8);
    if (c->kind == 's') return strbuf_export(&c->sb, NULL);
    PyObject *data = PyBytes_FromStringAndSize((const char *)c->fb, r->n * c->width);
    if (!data) return NULL;
    PyObject *valid = c->fnulls ? bitmap(c->fvalid, r->n) : Py_NewRef(Py_None);
    if (!valid) {
        Py_DECREF(data);
        return NULL;
    }
    return Py_BuildValue("(NNn)", data, valid, c->fnulls);
}

static PyMethodDef cols_methods[] = {
    {"append", (PyCFunction)cols_append, METH_O, "Append a row (a tuple)."},
    {"truncate", (PyCFunction)cols_truncate_m, METH_O, "Keep the first n rows."},
    {"column", (PyCFunction)cols_column, METH_O, cols_column_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods cols_seq = {.sq_length = (lenfunc)cols_len, .sq_item = (ssizeargfunc)cols_item};

static PyTypeObject ColsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "otlp_aiops.otlp._wire.Cols",
    .tp_basicsize = sizeof(Cols),
    .tp_dealloc = (destructor)cols_dealloc,
    .tp_as_sequence = &cols_seq,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Cols(format): rows kept as column buffers, appended to and read like a list of tuples.",
    .tp_methods = cols_methods,
    .tp_new = cols_new,
};

/* The generic row append of the decoders: a list, or Cols (a tuple converted). */
static int rows_append(PyObject *rows, PyObject *t) {
    if (Py_IS_TYPE(rows, &ColsType)) return cols_append_tuple((Cols *)rows, t) < 0 ? -2 : 0;
    return PyList_Append(rows, t) < 0 ? -2 : 0;
}

static Py_ssize_t rows_len(PyObject *rows) {
    return Py_IS_TYPE(rows, &ColsType) ? ((Cols *)rows)->n : PyList_GET_SIZE(rows);
}

static int rows_truncate(PyObject *rows, Py_ssize_t n) {
    if (Py_IS_TYPE(rows, &ColsType)) {
        cols_truncate((Cols *)rows, n);
        return 0;
    }
    if (PyList_GET_SIZE(rows) > n) return PyList_SetSlice(rows, n, PyList_GET_SIZE(rows), NULL) < 0 ? -2 : 0;
    return 0;
}

static int rows_ok(PyObject *rows) {
    if (PyList_Check(rows) || Py_IS_TYPE(rows, &ColsType)) return 0;
    PyErr_SetString(PyExc_TypeError, "rows must be a list or a Cols");
    return -1;
}

typedef struct {
    PyObject *keys, *vals, *tag_pos, *tags; /* borrowed lists of an AttrCols (or buffers: BufAttrCols) */
    PyObject *kidx;                         /* its key index: dict key -> position in the key table */
    IdBuf *kb;                              /* keys and vals as column buffers (BufAttrCols), or NULL */
    StrBuf *vb;
    IdBuf *tpb, *tcb; /* with kb: the typed values' positions and their tags as TAG_NAMES codes */
} Attrs;

/* The type tags a BufAttrCols stores as codes (the module's TAG_NAMES, read by batches.py). The
 * three a decoder renders itself come first and are found by identity (interned). */
static const char *TAG_NAMES[] = {"string", "bool",   "int",         "double", "bytes",   "array",
                                  "kvlist", "array_otlp", "kvlist_otlp", "empty",  "strindex"};
#define TAG_COUNT ((int)(sizeof TAG_NAMES / sizeof TAG_NAMES[0]))

static int tag_code(PyObject *tag) {
    if (tag == S_bool) return 1;
    if (tag == S_int) return 2;
    if (tag == S_double) return 3;
    for (int i = 0; i < TAG_COUNT; i++)
        if (PyUnicode_Check(tag) && PyUnicode_CompareWithASCIIString(tag, TAG_NAMES[i]) == 0) return i;
    PyErr_Format(PyExc_ValueError, "unknown attribute type tag %R", tag);
    return -1;
}

static Py_ssize_t attrs_len(Attrs *a) { return a->kb ? a->kb->n : PyList_GET_SIZE(a->keys); }

static PyObject *attrs_size(Attrs *a) { return PyLong_FromSsize_t(attrs_len(a)); }

/* Append a value (str or None). */
static int attrs_push_val(Attrs *a, PyObject *text) {
    if (a->vb) return strbuf_push_obj(a->vb, text) < 0 ? -2 : 0;
    return PyList_Append(a->vals, text) < 0 ? -2 : 0;
}

/* Append a value given as valid UTF-8 bytes: no str is made on the buffers' path. */
static int attrs_push_utf8(Attrs *a, const uint8_t *p, Py_ssize_t n) {
    if (a->vb) return strbuf_push(a->vb, (const char *)p, n) < 0 ? -2 : 0;
    PyObject *s = n ? PyUnicode_DecodeUTF8((const char *)p, n, NULL) : (Py_INCREF(S_empty_str), S_empty_str);
    if (!s) return -2;
    int rc = PyList_Append(a->vals, s) < 0 ? -2 : 0;
    Py_DECREF(s);
    return rc;
}

/* tag_pos.append(pos); tags.append(tag) (on the buffers' path: the position and the tag's code) */
static int attrs_push_tag_at(Attrs *a, Py_ssize_t pos, PyObject *tag) {
    if (a->tpb) {
        int code = tag_code(tag);
        return (code < 0 || idbuf_push(a->tpb, (int32_t)pos) < 0 || idbuf_push(a->tcb, code) < 0) ? -2 : 0;
    }
    PyObject *po = PyLong_FromSsize_t(pos);
    int rc = (!po || PyList_Append(a->tag_pos, po) < 0 || PyList_Append(a->tags, tag) < 0) ? -2 : 0;
    Py_XDECREF(po);
    return rc;
}

/* The tag of the attribute about to be appended (at position len(keys)). */
static int attrs_push_tag(Attrs *a, PyObject *tag) { return attrs_push_tag_at(a, attrs_len(a), tag); }

/* id_bytes without the object: *out points at the id, or is NULL for None (empty or all zero). */
static int id_ptr(Ctx *c, const uint8_t *p, Py_ssize_t n, Py_ssize_t want, const char *what, const uint8_t **out) {
    *out = NULL;
    if (n == 0) return 0;
    if (n != want) {
        PyObject *unused = NULL;
        return id_bytes(c, p, n, want, what, &unused); /* the error */
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i]) {
            *out = p;
            return 0;
        }
    }
    return 0;
}

/* utf8 without the object: a record error if p[0:n] is not valid UTF-8. */
static int utf8_check(Ctx *c, const uint8_t *p, Py_ssize_t n, const char *what) {
    if (n == 0 || utf8_valid(p, n)) return 0;
    PyObject *unused = NULL;
    int rc = utf8(c, p, n, what, &unused);
    Py_XDECREF(unused);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* KeyValue (AnyValue rendering and the key cache are in _wire_pb.h) */

static int append_key_id(Attrs *a, PyObject *k, int32_t *id);

/* keys.append(kidx.setdefault(k, len(kidx))) */
static int append_key(Attrs *a, PyObject *k) {
    int32_t id;
    return append_key_id(a, k, &id);
}

/* Append a key given as bytes (valid UTF-8 unless c is given, which then gets the record error).
 * On the buffers' path the key cache also remembers the key's id in this batch (per IdBuf), so a
 * key seen before costs a hash and a memcmp, not a str and a dict lookup. */
static int append_key_bytes(Ctx *c, Attrs *a, const uint8_t *p, Py_ssize_t n) {
    if (a->kb && n <= KC_MAX_KEY) {
        uint64_t h = key_hash(p, n);
        for (int probe = 0; probe < 8; probe++) {
            KCEntry *e = &kcache[(h + probe) & (KC_SIZE - 1)];
            if (!e->str) break;
            if (e->h == h && e->n == n && (n == 0 || memcmp(e->bytes, p, n) == 0)) {
                if (e->serial == a->kb->serial) return idbuf_push(a->kb, e->id) < 0 ? -2 : 0;
                int32_t id;
                PyObject *k = e->str;
                Py_INCREF(k);
                int rc = append_key_id(a, k, &id);
                Py_DECREF(k);
                if (rc == 0) {
                    e->serial = a->kb->serial;
                    e->id = id;
                }
                return rc;
            }
        }
    }
    PyObject *k;
    int rc = key_str(c, p, n, &k);
    if (rc < 0) return rc;
    rc = append_key(a, k);
    Py_DECREF(k);
    return rc;
}

static int append_key_id(Attrs *a, PyObject *k, int32_t *id) {
    PyObject *i = key_index(a->kidx, k);
    if (!i) return -2;
    if (a->kb) {
        long v = PyLong_AsLong(i);
        if (v == -1 && PyErr_Occurred()) return -2;
        *id = (int32_t)v;
        return idbuf_push(a->kb, (int32_t)v) < 0 ? -2 : 0;
    }
    return PyList_Append(a->keys, i) < 0 ? -2 : 0;
}

/* Append one KeyValue to the attribute lists. */
static int decode_kv(Ctx *c, Attrs *a, const uint8_t *p, Py_ssize_t n) {
    const uint8_t *kp, *vp;
    Py_ssize_t kn, vn;
    PyObject *merged;
    int rc = kv_read(c, p, n, &kp, &kn, &vp, &vn, &merged);
    if (rc < 0) return rc;
    if (!merged && vp && vn > 0 && vp[0] == 0x0A) {
        /* the common case, a value that is one string_value and nothing else: key and value go to
         * the columns as bytes (no str on the buffers' path); anything else is rendered below */
        Rd v = {vp + 1, vp + vn};
        const uint8_t *sp;
        Py_ssize_t sn;
        if (rd_bytes(&v, &sp, &sn) == 0 && v.p == v.end && utf8_valid(sp, sn)) {
            if ((rc = append_key_bytes(c, a, kp, kn)) < 0) return rc; /* an invalid key: its error */
            return attrs_push_utf8(a, sp, sn);
        }
    } else if (!merged && vp && vn > 1 && (vp[0] == 0x10 || vp[0] == 0x18 || (vp[0] == 0x21 && vn == 9))) {
        /* one bool_value, int_value or double_value and nothing else: rendered here as render_any
         * does (true/false, %lld, repr), written as bytes */
        Rd v = {vp + 1, vp + vn};
        uint64_t iv;
        if ((vp[0] == 0x21 ? rd_fixed64(&v, &iv) : rd_varint(&v, &iv)) == 0 && v.p == v.end) {
            char num[32], *dyn = NULL;
            const char *txt = num;
            PyObject *tag;
            if (vp[0] == 0x10) {
                txt = iv ? "true" : "false";
                tag = S_bool;
            } else if (vp[0] == 0x18) {
                fmt_i64(num, (int64_t)iv);
                tag = S_int;
            } else {
                double d;
                memcpy(&d, &iv, 8);
                if (isnan(d)) txt = "NaN";
                else if (isinf(d)) txt = d > 0 ? "Infinity" : "-Infinity";
                else if (!(txt = dyn = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL))) return -2;
                tag = S_double;
            }
            Py_ssize_t pos = attrs_len(a);
            if ((rc = append_key_bytes(c, a, kp, kn)) < 0) { /* an invalid key: its error */
                PyMem_Free(dyn);
                return rc;
            }
            rc = (attrs_push_tag_at(a, pos, tag) < 0 ||
                  attrs_push_utf8(a, (const uint8_t *)txt, (Py_ssize_t)strlen(txt)) < 0)
                     ? -2
                     : 0;
            PyMem_Free(dyn);
            return rc;
        }
    }
    PyObject *k, *tag, *text;
    if ((rc = kv_render(c, kp, kn, vp, vn, merged, &k, &tag, &text)) < 0) return rc;
    if (tag != S_string && attrs_push_tag(a, tag) < 0) {
        Py_DECREF(k);
        Py_DECREF(tag);
        Py_DECREF(text);
        return -2;
    }
    rc = (append_key(a, k) < 0 || attrs_push_val(a, text) < 0) ? -2 : 0;
    Py_DECREF(k);
    Py_DECREF(tag);
    Py_DECREF(text);
    return rc;
}

static int get_attrs(PyObject *t, Attrs *a) {
    if (attr_parts(t, &a->keys, &a->vals, &a->tag_pos, &a->tags, &a->kidx) < 0) return -1;
    a->kb = NULL;
    a->vb = NULL;
    a->tpb = a->tcb = NULL;
    if (Py_IS_TYPE(a->keys, &IdBufType) && Py_IS_TYPE(a->vals, &StrBufType)) {
        a->kb = (IdBuf *)a->keys;
        a->vb = (StrBuf *)a->vals;
        if (Py_IS_TYPE(a->tag_pos, &IdBufType) && Py_IS_TYPE(a->tags, &IdBufType)) {
            a->tpb = (IdBuf *)a->tag_pos;
            a->tcb = (IdBuf *)a->tags;
        }
    } else if (!PyList_Check(a->keys) || !PyList_Check(a->vals)) {
        PyErr_SetString(PyExc_TypeError, "attribute keys and values must be lists, or an IdBuf and a StrBuf");
        return -1;
    }
    if ((!a->tpb && (!PyList_Check(a->tag_pos) || !PyList_Check(a->tags))) || !PyDict_Check(a->kidx)) {
        PyErr_SetString(PyExc_TypeError,
                        "attribute tags must be lists (or two IdBufs, with buffers), and the key index a dict");
        return -1;
    }
    return 0;
}

typedef struct {
    Py_ssize_t keys, vals, tag_pos, tags;
} AttrsMark;

static void attrs_mark(Attrs *a, AttrsMark *m) {
    m->keys = attrs_len(a);
    m->vals = a->vb ? a->vb->n : PyList_GET_SIZE(a->vals);
    m->tag_pos = a->tpb ? a->tpb->n : PyList_GET_SIZE(a->tag_pos);
    m->tags = a->tcb ? a->tcb->n : PyList_GET_SIZE(a->tags);
}

static int attrs_rollback(Attrs *a, AttrsMark *m) {
    if (a->kb) {
        if (a->kb->n > m->keys) a->kb->n = m->keys;
        if (a->vb->n > m->vals) strbuf_truncate(a->vb, m->vals);
    } else if (truncate_list(a->keys, m->keys) < 0 || truncate_list(a->vals, m->vals) < 0) {
        return -2;
    }
    if (a->tpb) {
        if (a->tpb->n > m->tag_pos) a->tpb->n = m->tag_pos;
        if (a->tcb->n > m->tags) a->tcb->n = m->tags;
    } else if (truncate_list(a->tag_pos, m->tag_pos) < 0 || truncate_list(a->tags, m->tags) < 0) {
        return -2;
    }
    return 0;
}

/* Report an error: errors.append((resource_index, scope_index, index_in_scope, record_index, code,
 * message, bytes)). An index of -1 means the error is about the container one level up. */
static int report(Ctx *c, PyObject *errors, Py_ssize_t ri, Py_ssize_t si, Py_ssize_t idx, long long rec,
                  const uint8_t *p, Py_ssize_t n) {
    PyObject *t = Py_BuildValue("(nnnLsOy#)", ri, si, idx, rec, c->err_code, c->err_msg, (const char *)p, n);
    Py_CLEAR(c->err_msg);
    if (!t) return -2;
    int rc = PyList_Append(errors, t);
    Py_DECREF(t);
    return rc < 0 ? -2 : 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* spans */

typedef struct {
    PyObject *rows, *events, *links;
    Attrs attrs, ev_attrs, lk_attrs;
} SpanOut;

static int decode_event(Ctx *c, SpanOut *o, Py_ssize_t row, Py_ssize_t j, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t time = 0, dropped = 0;
    const uint8_t *np = NULL;
    Py_ssize_t nn = 0;
    int rc;
    while (r.p < r.end) {
        uint64_t key;
        if (rd_tag(&r, &key) < 0) return malformed(c, "a span event");
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        if (f == 1 && wt == 1) {
            if (rd_fixed64(&r, &time) < 0) return malformed(c, "a span event");
        } else if (f == 2 && wt == 2) {
            if (rd_str(&r, &np, &nn) < 0) return malformed(c, "a span event");
        } else if (f == 3 && wt == 2) {
            if (rd_bytes(&r, &s, &sn) < 0) return malformed(c, "a span event");
            if ((rc = decode_kv(c, &o->ev_attrs, s, sn)) < 0) return rc;
        } else if (f == 4 && wt == 0) {
            if (rd_varint(&r, &dropped) < 0) return malformed(c, "a span event");
        } else {
            if (skip_field(&r, f, wt) < 0) return malformed(c, "a span event");
            if ((rc = count_unknown(c, "Event", (uint64_t)f)) < 0) return rc;
        }
    }
    if ((rc = check_time(c, time, "event time_unix_nano")) < 0) return rc;
    PyObject *name;
    if ((rc = utf8(c, np, nn, "event name", &name)) < 0) return rc;
    PyObject *t = Py_BuildValue("(nnLNNI)", row, j, (long long)time, name, attrs_size(&o->ev_attrs),
                                (unsigned int)(uint32_t)dropped);
    if (!t) return -2;
    rc = PyList_Append(o->events, t);
    Py_DECREF(t);
    return rc < 0 ? -2 : 0;
}

static int decode_link(Ctx *c, SpanOut *o, Py_ssize_t row, Py_ssize_t j, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    const uint8_t *tp = NULL, *sp = NULL, *tsp = NULL;
    Py_ssize_t tn = 0, sn_ = 0, tsn = 0;
    uint64_t dropped = 0;
    uint32_t flags = 0;
    int rc;
    while (r.p < r.end) {
        uint64_t key;
        if (rd_tag(&r, &key) < 0) return malformed(c, "a span link");
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        if (f == 1 && wt == 2) {
            if (rd_bytes(&r, &tp, &tn) < 0) return malformed(c, "a span link");
        } else if (f == 2 && wt == 2) {
            if (rd_bytes(&r, &sp, &sn_) < 0) return malformed(c, "a span link");
        } else if (f == 3 && wt == 2) {
            if (rd_str(&r, &tsp, &tsn) < 0) return malformed(c, "a span link");
        } else if (f == 4 && wt == 2) {
            if (rd_bytes(&r, &s, &sn) < 0) return malformed(c, "a span link");
            if ((rc = decode_kv(c, &o->lk_attrs, s, sn)) < 0) return rc;
        } else if (f == 5 && wt == 0) {
            if (rd_varint(&r, &dropped) < 0) return malformed(c, "a span link");
        } else if (f == 6 && wt == 5) {
            if (rd_fixed32(&r, &flags) < 0) return malformed(c, "a span link");
        } else {
            if (skip_field(&r, f, wt) < 0) return malformed(c, "a span link");
            if ((rc = count_unknown(c, "Link", (uint64_t)f)) < 0) return rc;
        }
    }
    PyObject *tid = NULL, *sid = NULL, *ts = NULL;
    if ((rc = id_bytes(c, tp, tn, 16, "link trace_id", &tid)) < 0) goto fail;
    if ((rc = id_bytes(c, sp, sn_, 8, "link span_id", &sid)) < 0) goto fail;
    if ((rc = opt_utf8(c, tsp, tsn, "link trace_state", &ts)) < 0) goto fail;
    PyObject *t = Py_BuildValue("(nnNNNINI)", row, j, tid, sid, ts, (unsigned int)flags, attrs_size(&o->lk_attrs),
                                (unsigned int)(uint32_t)dropped);
    if (!t) return -2;
    rc = PyList_Append(o->links, t);
    Py_DECREF(t);
    return rc < 0 ? -2 : 0;
fail:
    Py_XDECREF(tid);
    Py_XDECREF(sid);
    Py_XDECREF(ts);
    return rc;
}

static int decode_span(Ctx *c, SpanOut *o, const uint8_t *p, Py_ssize_t n, PyObject *ci, long long rec) {
    Rd r = {p, p + n};
    const uint8_t *tp = NULL, *sp = NULL, *pp = NULL, *tsp = NULL, *np = NULL, *mp = NULL;
    Py_ssize_t tn = 0, sn_ = 0, pn = 0, tsn = 0, nn = 0, mn = 0;
    uint64_t kind = 0, start = 0, end = 0, da = 0, de = 0, dl = 0, code = 0;
    uint32_t flags = 0;
    Py_ssize_t n_ev = 0, n_lk = 0;
    Py_ssize_t row = rows_len(o->rows);
    int rc;
    while (r.p < r.end) {
        uint64_t key;
        if (rd_tag(&r, &key) < 0) return malformed(c, "a span");
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        switch (f) {
        case 1: if (wt != 2) goto unknown; if (rd_bytes(&r, &tp, &tn) < 0) goto bad; break;
        case 2: if (wt != 2) goto unknown; if (rd_bytes(&r, &sp, &sn_) < 0) goto bad; break;
        case 3: if (wt != 2) goto unknown; if (rd_str(&r, &tsp, &tsn) < 0) goto bad; break;
        case 4: if (wt != 2) goto unknown; if (rd_bytes(&r, &pp, &pn) < 0) goto bad; break;
        case 5: if (wt != 2) goto unknown; if (rd_str(&r, &np, &nn) < 0) goto bad; break;
        case 6: if (wt != 0) goto unknown; if (rd_varint(&r, &kind) < 0) goto bad; break;
        case 7: if (wt != 1) goto unknown; if (rd_fixed64(&r, &start) < 0) goto bad; break;
        case 8: if (wt != 1) goto unknown; if (rd_fixed64(&r, &end) < 0) goto bad; break;
        case 9:
            if (wt != 2) goto unknown;
            if (rd_bytes(&r, &s, &sn) < 0) goto bad;
            if ((rc = decode_kv(c, &o->attrs, s, sn)) < 0) return rc;
            break;
        case 10: if (wt != 0) goto unknown; if (rd_varint(&r, &da) < 0) goto bad; break;
        case 11:
            if (wt != 2) goto unknown;
            if (rd_bytes(&r, &s, &sn) < 0) goto bad;
            if ((rc = decode_event(c, o, row, n_ev++, s, sn)) < 0) return rc;
            break;
        case 12: if (wt != 0) goto unknown; if (rd_varint(&r, &de) < 0) goto bad; break;
        case 13:
            if (wt != 2) goto unknown;
            if (rd_bytes(&r, &s, &sn) < 0) goto bad;
            if ((rc = decode_link(c, o, row, n_lk++, s, sn)) < 0) return rc;
            break;
        case 14: if (wt != 0) goto unknown; if (rd_varint(&r, &dl) < 0) goto bad; break;
        case 15: {
            if (wt != 2) goto unknown;
            if (rd_bytes(&r, &s, &sn) < 0) goto bad;
            Rd q = {s, s + sn}; /* Status: occurrences merge field by field, last wins */
            while (q.p < q.end) {
                uint64_t k2;
                if (rd_tag(&q, &k2) < 0) goto bad;
                int f2 = (int)(k2 >> 3), w2 = (int)(k2 & 7);
                if (f2 == 2 && w2 == 2) {
                    if (rd_str(&q, &mp, &mn) < 0) goto bad;
                } else if (f2 == 3 && w2 == 0) {
                    if (rd_varint(&q, &code) < 0) goto bad;
                } else {
                    if (skip_field(&q, f2, w2) < 0) goto bad;
                    if ((rc = count_unknown(c, "Status", (uint64_t)f2)) < 0) return rc;
                }
            }
            break;
        }
        case 16: if (wt != 5) goto unknown; if (rd_fixed32(&r, &flags) < 0) goto bad; break;
        default:
        unknown:
            if (skip_field(&r, f, wt) < 0) goto bad;
            if ((rc = count_unknown(c, "Span", (uint64_t)f)) < 0) return rc;
        }
    }
    int32_t kind32 = (int32_t)kind, code32 = (int32_t)code;
    if (kind32 < 0 || kind32 > 5)
        return rec_err(c, "unknown_enum", PyUnicode_FromFormat("kind %d is not a known SpanKind", kind32));
    if (code32 < 0 || code32 > 2)
        return rec_err(c, "unknown_enum", PyUnicode_FromFormat("status.code %d is not a known StatusCode", code32));
    if ((rc = check_time(c, start, "start_time_unix_nano")) < 0) return rc;
    if ((rc = check_time(c, end, "end_time_unix_nano")) < 0) return rc;
    if (Py_IS_TYPE(o->rows, &ColsType)) { /* rows as columns: no object per field */
        Cols *R = (Cols *)o->rows;
        const uint8_t *tid, *sid, *pid;
        if ((rc = id_ptr(c, tp, tn, 16, "trace_id", &tid)) < 0 || (rc = id_ptr(c, sp, sn_, 8, "span_id", &sid)) < 0 ||
            (rc = id_ptr(c, pp, pn, 8, "parent_span_id", &pid)) < 0 ||
            (rc = utf8_check(c, tsp, tsn, "trace_state")) < 0 || (rc = utf8_check(c, np, nn, "name")) < 0 ||
            (rc = utf8_check(c, mp, mn, "status.message")) < 0)
            return rc;
        long long cv = PyLong_AsLongLong(ci);
        if ((cv == -1 && PyErr_Occurred()) || cols_reserve(R) < 0) return -2;
        cols_id(R, 0, tid);
        cols_id(R, 1, sid);
        cols_id(R, 2, pid);
        if (cols_s(R, 3, tsn ? tsp : NULL, tsn) < 0 || cols_s(R, 5, nn ? np : (const uint8_t *)"", nn) < 0 ||
            cols_s(R, 10, mn ? mp : NULL, mn) < 0) {
            cols_truncate(R, R->n);
            return -2;
        }
        cols_i(R, 4, flags);
        cols_i(R, 6, kind32);
        cols_i(R, 7, (int64_t)start);
        cols_i(R, 8, (int64_t)end);
        cols_i(R, 9, code32);
        cols_i(R, 11, attrs_len(&o->attrs));
        cols_i(R, 12, (uint32_t)da);
        cols_i(R, 13, n_ev);
        cols_i(R, 14, (uint32_t)de);
        cols_i(R, 15, n_lk);
        cols_i(R, 16, (uint32_t)dl);
        cols_i(R, 17, cv);
        cols_i(R, 18, rec);
        cols_commit(R);
        return 0;
    }
    PyObject *tid = NULL, *sid = NULL, *pid = NULL, *ts = NULL, *name = NULL, *msg = NULL;
    if ((rc = id_bytes(c, tp, tn, 16, "trace_id", &tid)) < 0) goto fail;
    if ((rc = id_bytes(c, sp, sn_, 8, "span_id", &sid)) < 0) goto fail;
    if ((rc = id_bytes(c, pp, pn, 8, "parent_span_id", &pid)) < 0) goto fail;
    if ((rc = opt_utf8(c, tsp, tsn, "trace_state", &ts)) < 0) goto fail;
    if ((rc = utf8(c, np, nn, "name", &name)) < 0) goto fail;
    if ((rc = opt_utf8(c, mp, mn, "status.message", &msg)) < 0) goto fail;
    PyObject *t = PyTuple_New(19);
    if (!t) {
        rc = -2;
        goto fail;
    }
    PyTuple_SET_ITEM(t, 0, tid);
    PyTuple_SET_ITEM(t, 1, sid);
    PyTuple_SET_ITEM(t, 2, pid);
    PyTuple_SET_ITEM(t, 3, ts);
    PyTuple_SET_ITEM(t, 4, PyLong_FromUnsignedLong(flags));
    PyTuple_SET_ITEM(t, 5, name);
    PyTuple_SET_ITEM(t, 6, PyLong_FromLong(kind32));
    PyTuple_SET_ITEM(t, 7, PyLong_FromUnsignedLongLong(start));
    PyTuple_SET_ITEM(t, 8, PyLong_FromUnsignedLongLong(end));
    PyTuple_SET_ITEM(t, 9, PyLong_FromLong(code32));
    PyTuple_SET_ITEM(t, 10, msg);
    PyTuple_SET_ITEM(t, 11, attrs_size(&o->attrs));
    PyTuple_SET_ITEM(t, 12, PyLong_FromUnsignedLong((uint32_t)da));
    PyTuple_SET_ITEM(t, 13, PyLong_FromSsize_t(n_ev));
    PyTuple_SET_ITEM(t, 14, PyLong_FromUnsignedLong((uint32_t)de));
    PyTuple_SET_ITEM(t, 15, PyLong_FromSsize_t(n_lk));
    PyTuple_SET_ITEM(t, 16, PyLong_FromUnsignedLong((uint32_t)dl));
    Py_INCREF(ci);
    PyTuple_SET_ITEM(t, 17, ci);
    PyTuple_SET_ITEM(t, 18, PyLong_FromLongLong(rec));
    for (int i = 0; i < 19; i++) {
        if (!PyTuple_GET_ITEM(t, i)) {
            Py_DECREF(t);
            return -2;
        }
    }
    rc = rows_append(o->rows, t);
    Py_DECREF(t);
    return rc;
fail:
    Py_XDECREF(tid);
    Py_XDECREF(sid);
    Py_XDECREF(pid);
    Py_XDECREF(ts);
    Py_XDECREF(name);
    Py_XDECREF(msg);
    return rc;
bad:
    return malformed(c, "a span");
}

/* Iterate the fields of a ScopeSpans (or ScopeLogs) message in buf[start:end]; field 2 holds the
 * records, fields 1 and 3 (scope, schema_url) belong to the caller, others are counted unknown.
 * Returns the number of records seen, or NULL on a Python error. */
typedef int (*record_fn)(Ctx *, void *, const uint8_t *, Py_ssize_t, PyObject *, long long);

static PyObject *iterate_scope(Ctx *c, void *out, const uint8_t *buf, Py_ssize_t len, PyObject *ci, long long rec0,
                               PyObject *errors, const char *container, record_fn fn,
                               int (*mark)(void *, void *), int (*rollback)(void *, void *), void *markbuf,
                               Py_ssize_t ri, Py_ssize_t si, PyObject *validate) {
    Rd r = {buf, buf + len};
    Py_ssize_t idx = 0;
    while (r.p < r.end) {
        const uint8_t *at = r.p; /* where a malformed tail starts, if it does */
        uint64_t key;
        if (rd_tag(&r, &key) < 0) {
            r.p = at;
            break;
        }
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 2 && wt == 2) {
            const uint8_t *s;
            Py_ssize_t sn;
            if (rd_bytes(&r, &s, &sn) < 0) {
                r.p = at;
                break;
            }
            mark(out, markbuf);
            int rc = fn(c, out, s, sn, ci, rec0 + idx);
            if (rc == -2) return NULL;
            if (rc == -1 && validate && strcmp(c->err_code, "invalid_protobuf") != 0) {
                /* A rule broken early in the record: upb rejects a record whose bytes are malformed
                 * anywhere, whatever else is wrong with it; ask it, so both decoders say the same. */
                PyObject *v = PyObject_CallFunction(validate, "y#", (const char *)s, sn);
                if (!v) return NULL;
                if (!PyTuple_Check(v) || PyTuple_GET_SIZE(v) != 2 || !PyList_Check(PyTuple_GET_ITEM(v, 1))) {
                    Py_DECREF(v);
                    PyErr_SetString(PyExc_TypeError, "validate must return (reason or None, unknown field names)");
                    return NULL;
                }
                PyObject *why = PyTuple_GET_ITEM(v, 0);
                if (why != Py_None) {
                    Py_INCREF(why);
                    Py_XDECREF(c->err_msg);
                    c->err_code = "invalid_protobuf";
                    c->err_msg = why;
                } else { /* its unknown fields are those of the whole record, not of what was read */
                    if (PyList_SetSlice(c->pending, 0, PyList_GET_SIZE(c->pending), PyTuple_GET_ITEM(v, 1)) < 0) {
                        Py_DECREF(v);
                        return NULL;
                    }
                }
                Py_DECREF(v);
            }
            if (flush_unknown(c, rc == 0 || strcmp(c->err_code, "invalid_protobuf") != 0) < 0) return NULL;
            if (rc == -1 && (rollback(out, markbuf) < 0 || report(c, errors, ri, si, idx, rec0 + idx, s, sn) < 0))
                return NULL;
            idx++;
        } else if ((f == 1 || f == 3) && wt == 2) {
            if (skip_field(&r, f, wt) < 0) {
                r.p = at;
                break;
            }
        } else {
            if (skip_field(&r, f, wt) < 0) {
                r.p = at;
                break;
            }
            if (count_unknown(c, container, (uint64_t)f) < 0 || flush_unknown(c, 1) < 0) return NULL;
        }
    }
    if (r.p < r.end) { /* malformed wire format in the container itself: report the tail */
        c->err_code = "invalid_protobuf";
        Py_XDECREF(c->err_msg);
        c->err_msg = PyUnicode_FromFormat("malformed protobuf in %s after %zd records", container, idx);
        if (!c->err_msg) return NULL;
        if (report(c, errors, ri, si, -1, rec0 + idx, r.p, r.end - r.p) < 0) return NULL;
    }
    return PyLong_FromSsize_t(idx);
}

typedef struct {
    Py_ssize_t rows, events, links;
    AttrsMark a, ea, la;
} SpanMark;

static int span_mark(void *o_, void *m_) {
    SpanOut *o = o_;
    SpanMark *m = m_;
    m->rows = rows_len(o->rows);
    m->events = PyList_GET_SIZE(o->events);
    m->links = PyList_GET_SIZE(o->links);
    attrs_mark(&o->attrs, &m->a);
    attrs_mark(&o->ev_attrs, &m->ea);
    attrs_mark(&o->lk_attrs, &m->la);
    return 0;
}

static int span_rollback(void *o_, void *m_) {
    SpanOut *o = o_;
    SpanMark *m = m_;
    if (rows_truncate(o->rows, m->rows) < 0 || truncate_list(o->events, m->events) < 0 ||
        truncate_list(o->links, m->links) < 0)
        return -2;
    if (attrs_rollback(&o->attrs, &m->a) < 0 || attrs_rollback(&o->ev_attrs, &m->ea) < 0 ||
        attrs_rollback(&o->lk_attrs, &m->la) < 0)
        return -2;
    return 0;
}

static int span_fn(Ctx *c, void *o, const uint8_t *p, Py_ssize_t n, PyObject *ci, long long rec) {
    return decode_span(c, (SpanOut *)o, p, n, ci, rec);
}

static int init_ctx(Ctx *c, PyObject *fallback, PyObject *unknown) {
    if (!PyCallable_Check(fallback) || !PyDict_Check(unknown)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable and unknown a dict");
        return -1;
    }
    c->fallback = fallback;
    c->unknown = unknown;
    c->err_code = NULL;
    c->err_msg = NULL;
    c->pending = PyList_New(0);
    return c->pending ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------- */
/* log records */

typedef struct {
    PyObject *rows;
    Attrs attrs;
} LogOut;

static int decode_log(Ctx *c, LogOut *o, const uint8_t *p, Py_ssize_t n, PyObject *ci, long long rec) {
    Rd r = {p, p + n};
    uint64_t time = 0, observed = 0, sev = 0, da = 0;
    uint32_t flags = 0;
    const uint8_t *stp = NULL, *tp = NULL, *sp = NULL, *enp = NULL, *bp = NULL;
    Py_ssize_t stn = 0, tn = 0, sn_ = 0, enn = 0, bn = 0;
    int nbody = 0;
    PyObject *merged = NULL;
    int rc;
    while (r.p < r.end) {
        uint64_t key;
        if (rd_tag(&r, &key) < 0) goto bad;
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        switch (f) {
        case 1: if (wt != 1) goto unknown; if (rd_fixed64(&r, &time) < 0) goto bad; break;
        case 11: if (wt != 1) goto unknown; if (rd_fixed64(&r, &observed) < 0) goto bad; break;
        case 2: if (wt != 0) goto unknown; if (rd_varint(&r, &sev) < 0) goto bad; break;
        case 3: if (wt != 2) goto unknown; if (rd_str(&r, &stp, &stn) < 0) goto bad; break;
        case 5:
            if (wt != 2) goto unknown;
            if (rd_bytes(&r, &s, &sn) < 0) goto bad;
            if (nbody == 0) {
                bp = s;
                bn = sn;
            } else if ((rc = merge_occurrence(&merged, nbody, bp, bn, s, sn)) < 0) {
                if (rc == -1) goto bad;
                return rc;
            }
            nbody++;
            break;
        case 6:
            if (wt != 2) goto unknown;
            if (rd_bytes(&r, &s, &sn) < 0) goto bad;
            if ((rc = decode_kv(c, &o->attrs, s, sn)) < 0) {
                Py_XDECREF(merged);
                return rc;
            }
            break;
        case 7: if (wt != 0) goto unknown; if (rd_varint(&r, &da) < 0) goto bad; break;
        case 8: if (wt != 5) goto unknown; if (rd_fixed32(&r, &flags) < 0) goto bad; break;
        case 9: if (wt != 2) goto unknown; if (rd_bytes(&r, &tp, &tn) < 0) goto bad; break;
        case 10: if (wt != 2) goto unknown; if (rd_bytes(&r, &sp, &sn_) < 0) goto bad; break;
        case 12: if (wt != 2) goto unknown; if (rd_str(&r, &enp, &enn) < 0) goto bad; break;
        default:
        unknown:
            if (skip_field(&r, f, wt) < 0) goto bad;
            if ((rc = count_unknown(c, "LogRecord", (uint64_t)f)) < 0) {
                Py_XDECREF(merged);
                return rc;
            }
        }
    }
    int32_t sev32 = (int32_t)sev;
    PyObject *btag = NULL, *btext = NULL, *st = NULL, *tid = NULL, *sid = NULL, *en = NULL;
    if (sev32 < 0 || sev32 > 24) {
        rc = rec_err(c, "unknown_enum", PyUnicode_FromFormat("severity_number %d is not a known SeverityNumber", sev32));
        goto fail;
    }
    if ((rc = check_time(c, time, "time_unix_nano")) < 0) goto fail;
    if ((rc = check_time(c, observed, "observed_time_unix_nano")) < 0) goto fail;
    if (Py_IS_TYPE(o->rows, &ColsType)) { /* rows as columns: no object per field */
        Cols *R = (Cols *)o->rows;
        const uint8_t *bsp = NULL, *tidp, *sidp;
        Py_ssize_t bsn = 0;
        if (nbody && !merged && bn > 0 && bp[0] == 0x0A) { /* a string body: its bytes */
            Rd v = {bp + 1, bp + bn};
            if (!(rd_bytes(&v, &bsp, &bsn) == 0 && v.p == v.end && utf8_valid(bsp, bsn))) bsp = NULL;
        }
        if (nbody && !bsp) {
            if (merged)
                rc = render_any(c, (const uint8_t *)PyBytes_AS_STRING(merged), PyBytes_GET_SIZE(merged), 1, &btag,
                                &btext);
            else
                rc = render_any(c, bp, bn, 0, &btag, &btext);
            if (rc < 0) goto fail;
        }
        if ((rc = utf8_check(c, stp, stn, "severity_text")) < 0 || (rc = id_ptr(c, tp, tn, 16, "trace_id", &tidp)) < 0 ||
            (rc = id_ptr(c, sp, sn_, 8, "span_id", &sidp)) < 0 || (rc = utf8_check(c, enp, enn, "event_name")) < 0)
            goto fail;
        long long cv = PyLong_AsLongLong(ci);
        if ((cv == -1 && PyErr_Occurred()) || cols_reserve(R) < 0) {
            rc = -2;
            goto fail;
        }
        Py_ssize_t tagn = 0;
        const char *tagp = bsp ? "string" : btag && btag != Py_None ? PyUnicode_AsUTF8AndSize(btag, &tagn) : NULL;
        if (bsp) tagn = 6;
        if ((btag && btag != Py_None && !tagp) || cols_s(R, 3, stn ? stp : NULL, stn) < 0 ||
            (bsp ? cols_s(R, 4, bsp, bsn) : strbuf_push_obj(&R->c[4].sb, btext ? btext : Py_None)) < 0 ||
            cols_s(R, 5, (const uint8_t *)tagp, tagn) < 0 || cols_s(R, 11, enn ? enp : NULL, enn) < 0) {
            cols_truncate(R, R->n);
            rc = -2;
            goto fail;
        }
        cols_i(R, 0, (int64_t)time);
        cols_i(R, 1, (int64_t)observed);
        cols_i(R, 2, sev32);
        cols_i(R, 6, attrs_len(&o->attrs));
        cols_i(R, 7, (uint32_t)da);
        cols_i(R, 8, flags);
        cols_id(R, 9, tidp);
        cols_id(R, 10, sidp);
        cols_i(R, 12, cv);
        cols_i(R, 13, rec);
        cols_commit(R);
        rc = 0;
        goto fail; /* releases what is held */
    }
    if (nbody) {
        if (merged)
            rc = render_any(c, (const uint8_t *)PyBytes_AS_STRING(merged), PyBytes_GET_SIZE(merged), 1, &btag, &btext);
        else
            rc = render_any(c, bp, bn, 0, &btag, &btext);
        if (rc < 0) goto fail;
    } else {
        Py_INCREF(Py_None);
        Py_INCREF(Py_None);
        btag = Py_None;
        btext = Py_None;
    }
    if ((rc = opt_utf8(c, stp, stn, "severity_text", &st)) < 0) goto fail;
    if ((rc = id_bytes(c, tp, tn, 16, "trace_id", &tid)) < 0) goto fail;
    if ((rc = id_bytes(c, sp, sn_, 8, "span_id", &sid)) < 0) goto fail;
    if ((rc = opt_utf8(c, enp, enn, "event_name", &en)) < 0) goto fail;
    Py_XDECREF(merged);
    PyObject *t = PyTuple_New(14);
    if (!t) {
        Py_DECREF(btag);
        Py_DECREF(btext);
        Py_DECREF(st);
        Py_DECREF(tid);
        Py_DECREF(sid);
        Py_DECREF(en);
        return -2;
    }
    PyTuple_SET_ITEM(t, 0, PyLong_FromUnsignedLongLong(time));
    PyTuple_SET_ITEM(t, 1, PyLong_FromUnsignedLongLong(observed));
    PyTuple_SET_ITEM(t, 2, PyLong_FromLong(sev32));
    PyTuple_SET_ITEM(t, 3, st);
    PyTuple_SET_ITEM(t, 4, btext);
    PyTuple_SET_ITEM(t, 5, btag);
    PyTuple_SET_ITEM(t, 6, attrs_size(&o->attrs));
    PyTuple_SET_ITEM(t, 7, PyLong_FromUnsignedLong((uint32_t)da));
    PyTuple_SET_ITEM(t, 8, PyLong_FromUnsignedLong(flags));
    PyTuple_SET_ITEM(t, 9, tid);
    PyTuple_SET_ITEM(t, 10, sid);
    PyTuple_SET_ITEM(t, 11, en);
    Py_INCREF(ci);
    PyTuple_SET_ITEM(t, 12, ci);
    PyTuple_SET_ITEM(t, 13, PyLong_FromLongLong(rec));
    for (int i = 0; i < 14; i++) {
        if (!PyTuple_GET_ITEM(t, i)) {
            Py_DECREF(t);
            return -2;
        }
    }
    rc = rows_append(o->rows, t);
    Py_DECREF(t);
    return rc;
fail:
    Py_XDECREF(merged);
    Py_XDECREF(btag);
    Py_XDECREF(btext);
    Py_XDECREF(st);
    Py_XDECREF(tid);
    Py_XDECREF(sid);
    Py_XDECREF(en);
    return rc;
bad:
    Py_XDECREF(merged);
    return malformed(c, "a log record");
}

typedef struct {
    Py_ssize_t rows;
    AttrsMark a;
} LogMark;

static int log_mark(void *o_, void *m_) {
    LogOut *o = o_;
    LogMark *m = m_;
    m->rows = rows_len(o->rows);
    attrs_mark(&o->attrs, &m->a);
    return 0;
}

static int log_rollback(void *o_, void *m_) {
    LogOut *o = o_;
    LogMark *m = m_;
    if (rows_truncate(o->rows, m->rows) < 0) return -2;
    return attrs_rollback(&o->attrs, &m->a);
}

static int log_fn(Ctx *c, void *o, const uint8_t *p, Py_ssize_t n, PyObject *ci, long long rec) {
    return decode_log(c, (LogOut *)o, p, n, ci, rec);
}

/* ---------------------------------------------------------------------------------------------- */
/* a whole protobuf request: TracesData / LogsData / Export*ServiceRequest (field 1: Resource*) */

typedef struct {
    int kind; /* 0 spans, 1 log records */
    void *out;
    record_fn fn;
    int (*mark)(void *, void *);
    int (*rollback)(void *, void *);
    void *markbuf;
    PyObject *errors, *ctx_fn, *validate;
    const char *top, *rcont, *scont;
} Req;

static int set_err(Ctx *c, const char *code, PyObject *msg) {
    if (!msg) return -2;
    Py_XDECREF(c->err_msg);
    c->err_code = code;
    c->err_msg = msg;
    return 0;
}

/* Fields 1 (occurrences merged) and 3 (last) of a container, as new references (bytes, memoryview). */
static int header_fields(const uint8_t *p, Py_ssize_t n, PyObject **f1, PyObject **f3) {
    Rd r = {p, p + n};
    const uint8_t *a1 = NULL, *a3 = NULL;
    Py_ssize_t n1 = 0, n3 = 0;
    int count1 = 0;
    *f1 = NULL;
    while (r.p < r.end) {
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        if (rd_tag(&r, &key) < 0) break;
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if ((f == 1 || f == 3) && wt == 2) {
            if (rd_bytes(&r, &s, &sn) < 0) break;
            if (f == 3) {
                a3 = s;
                n3 = sn;
            } else if (count1++ == 0) {
                a1 = s;
                n1 = sn;
            } else { /* a repeated message field merges: concatenate */
                if (!*f1 && !(*f1 = PyBytes_FromStringAndSize((const char *)a1, n1))) return -2;
                PyObject *more = PyBytes_FromStringAndSize((const char *)s, sn);
                if (!more) return -2;
                PyBytes_ConcatAndDel(f1, more);
                if (!*f1) return -2;
            }
        } else if (skip_field(&r, f, wt) < 0) {
            break; /* the caller reports malformed bytes where it meets them */
        }
    }
    if (!*f1 && !(*f1 = PyBytes_FromStringAndSize(a1 ? (const char *)a1 : "", n1))) return -2;
    *f3 = PyBytes_FromStringAndSize(a3 ? (const char *)a3 : "", n3);
    return *f3 ? 0 : -2;
}

static PyObject *view(const uint8_t *p, Py_ssize_t n) { return PyMemoryView_FromMemory((char *)p, n, PyBUF_READ); }

/* A block without scopes: Python still checks (and registers) its resource. Returns 1 when the
 * resource is broken (Python has set the whole block aside), -1 on a Python error. */
static int resource_only(Req *q, Py_ssize_t ri, PyObject *res, PyObject *url, const uint8_t *p, Py_ssize_t n) {
    PyObject *x = PyObject_CallFunction(q->ctx_fn, "nnOOyyNN", ri, (Py_ssize_t)-1, res, url, "", "", view(p, n),
                                        view(p, n));
    if (!x) return -1;
    long v = PyLong_AsLong(x);
    Py_DECREF(x);
    if (v == -1 && PyErr_Occurred()) return -1;
    return v == -2;
}

/* One Resource* block: ctx_fn(ri, si, resource, schema_url, scope, scope_schema_url, block, scope_block)
 * gives the context index of each scope (or -1: skip it, Python has dealt with it). */
static int decode_resource_block(Ctx *c, Req *q, const uint8_t *p, Py_ssize_t n, Py_ssize_t ri, long long *rec) {
    PyObject *res = NULL, *url = NULL;
    if (header_fields(p, n, &res, &url) < 0) goto pyerr;
    Rd r = {p, p + n};
    Py_ssize_t si = 0;
    int dropped = 0; /* the resource is broken: Python has set the block aside; only count fields */
    while (r.p < r.end) {
        const uint8_t *at = r.p, *s;
        Py_ssize_t sn;
        uint64_t key;
        if (rd_tag(&r, &key) < 0) {
            r.p = at;
            goto bad;
        }
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 2 && wt == 2) {
            if (rd_bytes(&r, &s, &sn) < 0) {
                r.p = at;
                goto bad;
            }
            if (dropped) {
                si++;
                continue;
            }
            PyObject *scope, *surl;
            if (header_fields(s, sn, &scope, &surl) < 0) goto pyerr;
            PyObject *res_ = PyObject_CallFunction(q->ctx_fn, "nnOONNNN", ri, si, res, url, scope, surl, view(p, n),
                                                   view(s, sn));
            if (!res_) goto pyerr;
            long ci = PyLong_AsLong(res_);
            if (ci == -1 && PyErr_Occurred()) {
                Py_DECREF(res_);
                goto pyerr;
            }
            if (ci >= 0) {
                PyObject *got = iterate_scope(c, q->out, s, sn, res_, *rec, q->errors, q->scont, q->fn, q->mark,
                                              q->rollback, q->markbuf, ri, si, q->validate);
                if (!got) {
                    Py_DECREF(res_);
                    goto pyerr;
                }
                *rec += PyLong_AsLongLong(got);
                Py_DECREF(got);
            }
            dropped = ci == -2;
            Py_DECREF(res_);
            si++;
        } else if ((f == 1 || f == 3) && wt == 2) {
            if (skip_field(&r, f, wt) < 0) {
                r.p = at;
                goto bad;
            }
        } else {
            if (skip_field(&r, f, wt) < 0) {
                r.p = at;
                goto bad;
            }
            if (count_unknown(c, q->rcont, (uint64_t)f) < 0 || flush_unknown(c, 1) < 0) goto pyerr;
        }
    }
    if (si == 0 && resource_only(q, ri, res, url, p, n) < 0) goto pyerr;
    Py_DECREF(res);
    Py_DECREF(url);
    return 0;
bad:
    if (si == 0 && !dropped) {
        int broken = resource_only(q, ri, res, url, p, n);
        if (broken < 0) goto pyerr;
        dropped = broken;
    }
    Py_DECREF(res);
    Py_DECREF(url);
    if (dropped) return 0; /* a block set aside whole has no tail to report */
    if (set_err(c, "invalid_protobuf",
                PyUnicode_FromFormat("malformed protobuf in %s after %zd scopes", q->rcont, si)) < 0)
        return -2;
    return report(c, q->errors, ri, -1, -1, *rec, r.p, r.end - r.p);
pyerr:
    Py_XDECREF(res);
    Py_XDECREF(url);
    return -2;
}

PyDoc_STRVAR(decode_request_doc,
"decode_request(kind, message, first_record, rows, attrs, events, links, event_attrs, link_attrs,\n"
"               fallback, unknown, errors, ctx_fn, validate) -> int\n\n"
"Decode a serialised TracesData / LogsData / Export*ServiceRequest (kind 0: spans, 1: log\n"
"records; for logs, events, links and their attribute lists are None) into the batch lists.\n"
"ctx_fn(resource_index, scope_index, resource, schema_url, scope, scope_schema_url, block,\n"
"scope_block) returns each scope's context index, or -1 to skip the scope. fallback(bytes) renders\n"
"a composite AnyValue as (tag, text, names of its unknown fields). errors receives\n"
"(resource_index, scope_index, index, record_index, code, message, bytes); -1 indices mark an\n"
"error in the container one level up. validate(record_bytes) returns (None, unknown field names)\n"
"if upb parses the record, else (why not, []); a record that breaks a rule is reported as\n"
"malformed when it is.\n"
"error in the container one level up. Returns the record index after the last record.");

static PyObject *decode_request(PyObject *self, PyObject *args) {
    int kind;
    Py_buffer buf;
    long long rec;
    PyObject *rows, *attrs, *events, *links, *ev_attrs, *lk_attrs, *fallback, *unknown, *errors, *ctx_fn, *validate;
    if (!PyArg_ParseTuple(args, "iy*LOOOOOOOO!O!OO", &kind, &buf, &rec, &rows, &attrs, &events, &links, &ev_attrs,
                          &lk_attrs, &fallback, &PyDict_Type, &unknown, &PyList_Type, &errors, &ctx_fn, &validate))
        return NULL;
    if (rows_ok(rows) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    SpanOut so;
    LogOut lo;
    SpanMark sm;
    LogMark lm;
    Ctx c;
    Req q = {kind, NULL, NULL, NULL, NULL, NULL, errors, ctx_fn, validate, NULL, NULL, NULL};
    PyObject *result = NULL;
    c.pending = NULL;
    c.err_msg = NULL;
    if (kind == 0) {
        so.rows = rows;
        so.events = events;
        so.links = links;
        if (!PyList_Check(events) || !PyList_Check(links)) {
            PyErr_SetString(PyExc_TypeError, "events and links must be lists");
            goto done;
        }
        if (get_attrs(attrs, &so.attrs) < 0 || get_attrs(ev_attrs, &so.ev_attrs) < 0 ||
            get_attrs(lk_attrs, &so.lk_attrs) < 0)
            goto done;
        q.out = &so;
        q.fn = span_fn;
        q.mark = span_mark;
        q.rollback = span_rollback;
        q.markbuf = &sm;
        q.top = "TracesData";
        q.rcont = "ResourceSpans";
        q.scont = "ScopeSpans";
    } else {
        lo.rows = rows;
        if (get_attrs(attrs, &lo.attrs) < 0) goto done;
        q.out = &lo;
        q.fn = log_fn;
        q.mark = log_mark;
        q.rollback = log_rollback;
        q.markbuf = &lm;
        q.top = "LogsData";
        q.rcont = "ResourceLogs";
        q.scont = "ScopeLogs";
    }
    if (init_ctx(&c, fallback, unknown) < 0) goto done;
    Rd r = {buf.buf, (const uint8_t *)buf.buf + buf.len};
    Py_ssize_t ri = 0;
    while (r.p < r.end) {
        const uint8_t *at = r.p, *s;
        Py_ssize_t sn;
        uint64_t key;
        int rc = 0;
        if (rd_tag(&r, &key) < 0) {
            r.p = at;
            goto truncated;
        }
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 1 && wt == 2) {
            if (rd_bytes(&r, &s, &sn) < 0) {
                r.p = at;
                goto truncated;
            }
            rc = decode_resource_block(&c, &q, s, sn, ri++, &rec);
        } else {
            if (skip_field(&r, f, wt) < 0) {
                r.p = at;
                goto truncated;
            }
            rc = count_unknown(&c, q.top, (uint64_t)f) < 0 || flush_unknown(&c, 1) < 0 ? -2 : 0;
        }
        if (rc < 0) goto done;
    }
    result = PyLong_FromLongLong(rec);
    goto done;
truncated:
    if (set_err(&c, "truncated_message", PyUnicode_FromFormat("not well-formed protobuf after %zd blocks", ri)) < 0 ||
        report(&c, errors, ri, -1, -1, rec, r.p, r.end - r.p) < 0)
        goto done;
    result = PyLong_FromLongLong(rec);
done:
    Py_XDECREF(c.err_msg);
    Py_XDECREF(c.pending);
    PyBuffer_Release(&buf);
    return result;
}

/* ---------------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------------- */
/* OTLP/JSON records (dicts from a JSON parser): the common, strict-looking case in C; anything
 * unusual (snake_case keys, base64 ids, enum names, composite values, bad values) is handed to the
 * Python decoder for that one record, so every rule and message lives in one place. */

enum { F_UNKNOWN = -1 };
static PyObject *JK; /* dict: interned key -> small int id */
static PyObject *JK_NAMES_OBJ_key, *JK_NAMES_OBJ_value;
enum {
    J_traceId, J_spanId, J_parentSpanId, J_traceState, J_flags, J_name, J_kind, J_startTimeUnixNano,
    J_endTimeUnixNano, J_attributes, J_droppedAttributesCount, J_events, J_droppedEventsCount, J_links,
    J_droppedLinksCount, J_status, J_timeUnixNano, J_observedTimeUnixNano, J_severityNumber, J_severityText,
    J_body, J_eventName, J_code, J_message, J_key, J_value, J_stringValue, J_intValue, J_boolValue, J_doubleValue,
    J_COUNT
};
static const char *JK_NAMES[J_COUNT] = {
    "traceId", "spanId", "parentSpanId", "traceState", "flags", "name", "kind", "startTimeUnixNano",
    "endTimeUnixNano", "attributes", "droppedAttributesCount", "events", "droppedEventsCount", "links",
    "droppedLinksCount", "status", "timeUnixNano", "observedTimeUnixNano", "severityNumber", "severityText",
    "body", "eventName", "code", "message", "key", "value", "stringValue", "intValue", "boolValue", "doubleValue",
};

static int jkey(PyObject *k) {
    PyObject *v = PyDict_GetItemWithError(JK, k);
    if (!v) return PyErr_Occurred() ? -2 : F_UNKNOWN;
    return (int)PyLong_AsLong(v);
}

/* A hex id of exactly 2*want characters -> bytes (None if empty / all-zero); FALLBACK otherwise. */
static int jid(PyObject *v, Py_ssize_t want, PyObject **out) {
    if (v == NULL || v == Py_None) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 0;
    }
    if (!PyUnicode_CheckExact(v) || !PyUnicode_IS_ASCII(v)) return FALLBACK;
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    if (n == 0) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 0;
    }
    if (n != 2 * want) return FALLBACK;
    uint8_t b[16];
    int nonzero = hex_id((const uint8_t *)PyUnicode_DATA(v), want, b);
    if (nonzero < 0) return FALLBACK;
    if (!nonzero) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 0;
    }
    *out = PyBytes_FromStringAndSize((const char *)b, want);
    return *out ? 0 : -2;
}

/* Unix nanoseconds from a digit string or an int, within int64; FALLBACK otherwise. */
static int jtime(PyObject *v, uint64_t *out) {
    if (v == NULL || v == Py_None) {
        *out = 0;
        return 0;
    }
    if (PyUnicode_CheckExact(v) && PyUnicode_IS_ASCII(v)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(v);
        return digits_u64((const uint8_t *)PyUnicode_DATA(v), n, INT64_MAX_U, out);
    }
    if (PyLong_CheckExact(v)) {
        int overflow = 0;
        long long t = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || t < 0) return FALLBACK;
        *out = (uint64_t)t;
        return 0;
    }
    return FALLBACK;
}

/* A small non-negative int (uint32 fields, enums up to `top`); FALLBACK otherwise. */
static int juint(PyObject *v, long top, long *out) {
    if (v == NULL || v == Py_None) {
        *out = 0;
        return 0;
    }
    if (!PyLong_CheckExact(v)) return FALLBACK;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || x < 0 || x > top) return FALLBACK;
    *out = (long)x;
    return 0;
}

/* An optional string: absent / None / "" -> None; a non-string -> FALLBACK. */
static int jopt_str(PyObject *v, PyObject **out) {
    if (v == NULL || v == Py_None || (PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) == 0)) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 0;
    }
    if (!PyUnicode_CheckExact(v)) return FALLBACK;
    Py_INCREF(v);
    *out = v;
    return 0;
}

/* A string that defaults to "" (names). */
static int jstr(PyObject *v, PyObject **out) {
    if (v == NULL || v == Py_None) {
        Py_INCREF(S_empty_str);
        *out = S_empty_str;
        return 0;
    }
    if (!PyUnicode_CheckExact(v)) return FALLBACK;
    Py_INCREF(v);
    *out = v;
    return 0;
}

/* (tag, text) of a simple AnyValue dict: string, int, bool or double; FALLBACK for the rest. */
static int jany(PyObject *v, PyObject **tag, PyObject **text) {
    if (!PyDict_CheckExact(v) || PyDict_GET_SIZE(v) != 1) return FALLBACK;
    Py_ssize_t pos = 0;
    PyObject *k, *x;
    PyDict_Next(v, &pos, &k, &x);
    int id = jkey(k);
    if (id == -2) return -2;
    switch (id) {
    case J_stringValue:
        if (!PyUnicode_CheckExact(x)) return FALLBACK;
        Py_INCREF(x);
        *text = x;
        Py_INCREF(S_string);
        *tag = S_string;
        return 0;
    case J_boolValue:
        if (x != Py_True && x != Py_False) return FALLBACK;
        *text = x == Py_True ? S_true : S_false;
        Py_INCREF(*text);
        Py_INCREF(S_bool);
        *tag = S_bool;
        return 0;
    case J_intValue: {
        long long iv;
        if (PyLong_CheckExact(x)) {
            int overflow = 0;
            iv = PyLong_AsLongLongAndOverflow(x, &overflow);
            if (overflow) return FALLBACK;
        } else if (PyUnicode_CheckExact(x) && PyUnicode_IS_ASCII(x)) {
            Py_ssize_t n = PyUnicode_GET_LENGTH(x);
            const char *s = (const char *)PyUnicode_DATA(x);
            Py_ssize_t i = 0;
            int neg = 0;
            if (n > 0 && s[0] == '-') {
                neg = 1;
                i = 1;
            }
            if (n - i < 1 || n - i > 18) return FALLBACK; /* longer ones: Python checks the range */
            uint64_t u = 0;
            for (; i < n; i++) {
                if (s[i] < '0' || s[i] > '9') return FALLBACK;
                u = u * 10 + (uint64_t)(s[i] - '0');
            }
            iv = neg ? -(long long)u : (long long)u;
        } else {
            return FALLBACK;
        }
        *text = PyUnicode_FromFormat("%lld", iv);
        if (!*text) return -2;
        Py_INCREF(S_int);
        *tag = S_int;
        return 0;
    }
    case J_doubleValue: {
        double d;
        if (PyFloat_CheckExact(x))
            d = PyFloat_AS_DOUBLE(x);
        else
            return FALLBACK; /* ints, "NaN" strings: Python */
        if (!isfinite(d)) return FALLBACK;
        if (!(*text = double_text(d))) return -2;
        Py_INCREF(S_double);
        *tag = S_double;
        return 0;
    }
    }
    return FALLBACK;
}

static int jattrs(PyObject *lst, Attrs *a) {
    if (lst == NULL || lst == Py_None) return 0;
    if (!PyList_CheckExact(lst)) return FALLBACK;
    Py_ssize_t n = PyList_GET_SIZE(lst);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *kv = PyList_GET_ITEM(lst, i);
        if (!PyDict_CheckExact(kv) || PyDict_GET_SIZE(kv) != 2) return FALLBACK;
        PyObject *k = PyDict_GetItemWithError(kv, JK_NAMES_OBJ_key);
        PyObject *v = k ? PyDict_GetItemWithError(kv, JK_NAMES_OBJ_value) : NULL;
        if (!k || !v) return PyErr_Occurred() ? -2 : FALLBACK;
        if (!PyUnicode_CheckExact(k)) return FALLBACK;
        PyObject *tag, *text;
        int rc = jany(v, &tag, &text);
        if (rc) return rc;
        if (tag != S_string && attrs_push_tag(a, tag) < 0) {
            Py_DECREF(tag);
            Py_DECREF(text);
            return -2;
        }
        rc = (append_key(a, k) < 0 || attrs_push_val(a, text) < 0) ? -2 : 0;
        Py_DECREF(tag);
        Py_DECREF(text);
        if (rc) return rc;
    }
    return 0;
}

/* Collect the values of a dict's known keys into vals[J_COUNT]; FALLBACK on a key outside `allowed`. */
static int jfields(PyObject *d, const uint64_t allowed, PyObject **vals) {
    if (!PyDict_CheckExact(d)) return FALLBACK;
    for (int i = 0; i < J_COUNT; i++) vals[i] = NULL;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(d, &pos, &k, &v)) {
        int id = jkey(k);
        if (id == -2) return -2;
        if (id < 0 || !(allowed >> id & 1)) return FALLBACK;
        vals[id] = v;
    }
    return 0;
}

#define BIT(x) ((uint64_t)1 << (x))
static const uint64_t SPAN_ALLOWED = BIT(J_traceId) | BIT(J_spanId) | BIT(J_parentSpanId) | BIT(J_traceState) |
    BIT(J_flags) | BIT(J_name) | BIT(J_kind) | BIT(J_startTimeUnixNano) | BIT(J_endTimeUnixNano) |
    BIT(J_attributes) | BIT(J_droppedAttributesCount) | BIT(J_events) | BIT(J_droppedEventsCount) | BIT(J_links) |
    BIT(J_droppedLinksCount) | BIT(J_status);
static const uint64_t EVENT_ALLOWED = BIT(J_timeUnixNano) | BIT(J_name) | BIT(J_attributes) |
    BIT(J_droppedAttributesCount);
static const uint64_t LINK_ALLOWED = BIT(J_traceId) | BIT(J_spanId) | BIT(J_traceState) | BIT(J_attributes) |
    BIT(J_droppedAttributesCount) | BIT(J_flags);
static const uint64_t STATUS_ALLOWED = BIT(J_code) | BIT(J_message);
static const uint64_t LOG_ALLOWED = BIT(J_timeUnixNano) | BIT(J_observedTimeUnixNano) | BIT(J_severityNumber) |
    BIT(J_severityText) | BIT(J_body) | BIT(J_attributes) | BIT(J_droppedAttributesCount) | BIT(J_flags) |
    BIT(J_traceId) | BIT(J_spanId) | BIT(J_eventName);

#define TRY(x) do { int rc_ = (x); if (rc_) { ret = rc_; goto out; } } while (0)

static int jevent(SpanOut *o, Py_ssize_t row, Py_ssize_t j, PyObject *e) {
    PyObject *f[J_COUNT];
    int rc = jfields(e, EVENT_ALLOWED, f);
    if (rc) return rc;
    uint64_t time;
    long dropped;
    PyObject *name;
    if ((rc = jtime(f[J_timeUnixNano], &time)) || (rc = juint(f[J_droppedAttributesCount], 0xFFFFFFFFL, &dropped)))
        return rc;
    if ((rc = jattrs(f[J_attributes], &o->ev_attrs))) return rc;
    if ((rc = jstr(f[J_name], &name))) return rc;
    PyObject *t = Py_BuildValue("(nnLNNl)", row, j, (long long)time, name, attrs_size(&o->ev_attrs), dropped);
    if (!t) return -2;
    rc = PyList_Append(o->events, t);
    Py_DECREF(t);
    return rc < 0 ? -2 : 0;
}

static int jlink(SpanOut *o, Py_ssize_t row, Py_ssize_t j, PyObject *l) {
    PyObject *f[J_COUNT];
    int ret = jfields(l, LINK_ALLOWED, f);
    if (ret) return ret;
    long dropped, flags;
    PyObject *tid = NULL, *sid = NULL, *ts = NULL;
    TRY(jid(f[J_traceId], 16, &tid));
    TRY(jid(f[J_spanId], 8, &sid));
    TRY(jopt_str(f[J_traceState], &ts));
    TRY(juint(f[J_flags], 0xFFFFFFFFL, &flags));
    TRY(juint(f[J_droppedAttributesCount], 0xFFFFFFFFL, &dropped));
    TRY(jattrs(f[J_attributes], &o->lk_attrs));
    PyObject *t = Py_BuildValue("(nnNNNlNl)", row, j, tid, sid, ts, flags, attrs_size(&o->lk_attrs), dropped);
    if (!t) return -2;
    ret = PyList_Append(o->links, t);
    Py_DECREF(t);
    return ret < 0 ? -2 : 0;
out:
    Py_XDECREF(tid);
    Py_XDECREF(sid);
    Py_XDECREF(ts);
    return ret;
}

static int jspan(SpanOut *o, PyObject *s, PyObject *ci, long long rec) {
    PyObject *f[J_COUNT];
    int ret = jfields(s, SPAN_ALLOWED, f);
    if (ret) return ret;
    PyObject *tid = NULL, *sid = NULL, *pid = NULL, *ts = NULL, *name = NULL, *msg = NULL;
    uint64_t start, end;
    long kind, flags, da, de, dl, code = 0;
    Py_ssize_t row = rows_len(o->rows), n_ev = 0, n_lk = 0;
    TRY(jid(f[J_traceId], 16, &tid));
    TRY(jid(f[J_spanId], 8, &sid));
    TRY(jid(f[J_parentSpanId], 8, &pid));
    TRY(jtime(f[J_startTimeUnixNano], &start));
    TRY(jtime(f[J_endTimeUnixNano], &end));
    TRY(juint(f[J_kind], 5, &kind));
    TRY(jstr(f[J_name], &name));
    PyObject *st = f[J_status];
    if (st && st != Py_None && !(PyDict_CheckExact(st) && PyDict_GET_SIZE(st) == 0)) {
        PyObject *sf[J_COUNT];
        TRY(jfields(st, STATUS_ALLOWED, sf));
        TRY(juint(sf[J_code], 2, &code));
        TRY(jopt_str(sf[J_message], &msg));
    } else {
        Py_INCREF(Py_None);
        msg = Py_None;
    }
    TRY(jattrs(f[J_attributes], &o->attrs));
    PyObject *evs = f[J_events], *lks = f[J_links];
    if (evs && evs != Py_None) {
        if (!PyList_CheckExact(evs)) TRY(FALLBACK);
        n_ev = PyList_GET_SIZE(evs);
        for (Py_ssize_t j = 0; j < n_ev; j++) TRY(jevent(o, row, j, PyList_GET_ITEM(evs, j)));
    }
    if (lks && lks != Py_None) {
        if (!PyList_CheckExact(lks)) TRY(FALLBACK);
        n_lk = PyList_GET_SIZE(lks);
        for (Py_ssize_t j = 0; j < n_lk; j++) TRY(jlink(o, row, j, PyList_GET_ITEM(lks, j)));
    }
    TRY(jopt_str(f[J_traceState], &ts));
    TRY(juint(f[J_flags], 0xFFFFFFFFL, &flags));
    TRY(juint(f[J_droppedAttributesCount], 0xFFFFFFFFL, &da));
    TRY(juint(f[J_droppedEventsCount], 0xFFFFFFFFL, &de));
    TRY(juint(f[J_droppedLinksCount], 0xFFFFFFFFL, &dl));
    PyObject *t = Py_BuildValue("(NNNNlNlKKlNNlnlnlOL)", tid, sid, pid, ts, flags, name, kind,
                                (unsigned long long)start, (unsigned long long)end, code, msg,
                                attrs_size(&o->attrs), da, n_ev, de, n_lk, dl, ci, rec);
    if (!t) return -2;
    ret = rows_append(o->rows, t);
    Py_DECREF(t);
    return ret;
out:
    Py_XDECREF(tid);
    Py_XDECREF(sid);
    Py_XDECREF(pid);
    Py_XDECREF(ts);
    Py_XDECREF(name);
    Py_XDECREF(msg);
    return ret;
}

static int jlog(LogOut *o, PyObject *r, PyObject *ci, long long rec) {
    PyObject *f[J_COUNT];
    int ret = jfields(r, LOG_ALLOWED, f);
    if (ret) return ret;
    uint64_t time, observed;
    long sev, da, flags;
    PyObject *btag = NULL, *btext = NULL, *st = NULL, *tid = NULL, *sid = NULL, *en = NULL;
    TRY(jtime(f[J_timeUnixNano], &time));
    TRY(jtime(f[J_observedTimeUnixNano], &observed));
    TRY(juint(f[J_severityNumber], 24, &sev));
    if (f[J_body] && f[J_body] != Py_None) {
        TRY(jany(f[J_body], &btag, &btext));
    } else {
        Py_INCREF(Py_None);
        Py_INCREF(Py_None);
        btag = Py_None;
        btext = Py_None;
    }
    TRY(jattrs(f[J_attributes], &o->attrs));
    TRY(jopt_str(f[J_severityText], &st));
    TRY(juint(f[J_droppedAttributesCount], 0xFFFFFFFFL, &da));
    TRY(juint(f[J_flags], 0xFFFFFFFFL, &flags));
    TRY(jid(f[J_traceId], 16, &tid));
    TRY(jid(f[J_spanId], 8, &sid));
    TRY(jopt_str(f[J_eventName], &en));
    PyObject *t = Py_BuildValue("(KKlNNNNllNNNOL)", (unsigned long long)time, (unsigned long long)observed, sev, st,
                                btext, btag, attrs_size(&o->attrs), da, flags, tid, sid, en, ci, rec);
    if (!t) return -2;
    ret = rows_append(o->rows, t);
    Py_DECREF(t);
    return ret;
out:
    Py_XDECREF(btag);
    Py_XDECREF(btext);
    Py_XDECREF(st);
    Py_XDECREF(tid);
    Py_XDECREF(sid);
    Py_XDECREF(en);
    return ret;
}

/* Shared loop: each record through `fn`; on FALLBACK, undo and call py(index, record). */
typedef int (*jrecord_fn)(void *, PyObject *, PyObject *, long long);

static PyObject *jloop(PyObject *items, void *out, PyObject *ci, long long rec0, PyObject *py, jrecord_fn fn,
                       int (*mark)(void *, void *), int (*rollback)(void *, void *), void *markbuf) {
    Py_ssize_t n = PyList_GET_SIZE(items), fell_back = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        mark(out, markbuf);
        int rc = fn(out, item, ci, rec0 + i);
        if (rc == FALLBACK) {
            if (rollback(out, markbuf) < 0) return NULL;
            PyObject *idx = PyLong_FromSsize_t(i);
            if (!idx) return NULL;
            PyObject *res = PyObject_CallFunctionObjArgs(py, idx, item, NULL);
            Py_DECREF(idx);
            if (!res) return NULL;
            Py_DECREF(res);
            fell_back++;
        } else if (rc < 0) {
            return NULL;
        }
    }
    return PyLong_FromSsize_t(fell_back);
}

static int jspan_fn(void *o, PyObject *s, PyObject *ci, long long rec) { return jspan((SpanOut *)o, s, ci, rec); }
static int jlog_fn(void *o, PyObject *r, PyObject *ci, long long rec) { return jlog((LogOut *)o, r, ci, rec); }

PyDoc_STRVAR(decode_json_spans_doc,
"decode_json_spans(spans, ctx_index, first_record, rows, events, links, attrs, event_attrs, link_attrs,\n"
"                  python_fallback) -> int\n\n"
"Append the rows of a list of OTLP/JSON span dicts to the SpanBatch lists. A span outside the\n"
"common case is undone and passed to python_fallback(index, span). Returns how many were.");

static PyObject *decode_json_spans(PyObject *self, PyObject *args) {
    PyObject *items, *ci, *attrs, *ev_attrs, *lk_attrs, *py;
    long long rec0;
    SpanOut o;
    if (!PyArg_ParseTuple(args, "O!OLOO!O!OOOO", &PyList_Type, &items, &ci, &rec0, &o.rows, &PyList_Type, &o.events,
                          &PyList_Type, &o.links, &attrs, &ev_attrs, &lk_attrs, &py))
        return NULL;
    if (rows_ok(o.rows) < 0) return NULL;
    if (get_attrs(attrs, &o.attrs) < 0 || get_attrs(ev_attrs, &o.ev_attrs) < 0 || get_attrs(lk_attrs, &o.lk_attrs) < 0)
        return NULL;
    SpanMark m;
    return jloop(items, &o, ci, rec0, py, jspan_fn, span_mark, span_rollback, &m);
}

PyDoc_STRVAR(decode_json_logs_doc,
"decode_json_logs(records, ctx_index, first_record, rows, attrs, python_fallback) -> int\n\n"
"Append the rows of a list of OTLP/JSON log record dicts to the LogBatch lists (see decode_json_spans).");

static PyObject *decode_json_logs(PyObject *self, PyObject *args) {
    PyObject *items, *ci, *attrs, *py;
    long long rec0;
    LogOut o;
    if (!PyArg_ParseTuple(args, "O!OLOOO", &PyList_Type, &items, &ci, &rec0, &o.rows, &attrs, &py)) return NULL;
    if (rows_ok(o.rows) < 0) return NULL;
    if (get_attrs(attrs, &o.attrs) < 0) return NULL;
    LogMark m;
    return jloop(items, &o, ci, rec0, py, jlog_fn, log_mark, log_rollback, &m);
}

/* ---------------------------------------------------------------------------------------------- */
/* OTLP/JSON text straight to rows, for messages in the strict common form. Building the dict tree
 * of a JSON parser and freeing it again costs more than the rest of ingest; this reads the text
 * once. Anything outside the common form (another key, a base64 id, a name for an enum, a
 * composite value, a duplicate key, a malformed number...) gives up on the whole message, which
 * then goes through a JSON parser and the dict decoder, where every rule and message lives. The
 * tokenizer (T, tstr, tany, tattrs_each...) is in _wire_json.h, shared with _wire_metrics.c. */

/* Write a string column from tstr_col's result (s or obj; neither: absent). Optional columns
 * take absent and "" as None, others absent as "". */
static int cols_tstr(Cols *r, int j, const uint8_t *s, Py_ssize_t n, PyObject *obj, int optional) {
    if (obj) {
        if (optional && PyUnicode_GET_LENGTH(obj) == 0) return cols_s(r, j, NULL, 0);
        return strbuf_push_obj(&r->c[j].sb, obj);
    }
    if (!s || (optional && n == 0)) return cols_s(r, j, optional ? NULL : (const uint8_t *)"", 0);
    return cols_s(r, j, s, n);
}

/* tattrs_each's writer for the span and log attribute lists (or column buffers). */
static int tattr_push_wire(void *a_, TAttr *e) {
    Attrs *a = a_;
    if (e->tag != S_string && attrs_push_tag(a, e->tag) < 0) return -2;
    if ((e->kbs ? append_key_bytes(NULL, a, e->kbs, e->kbn) : append_key(a, e->key)) < 0 ||
        (e->fs     ? attrs_push_utf8(a, e->fs, e->fn)
         : !e->text ? attrs_push_utf8(a, (const uint8_t *)e->num, (Py_ssize_t)strlen(e->num))
                    : attrs_push_val(a, e->text)) < 0)
        return -2;
    return 0;
}

static int tattrs(T *t, Attrs *a) { return tattrs_each(t, a, tattr_push_wire); }

static int tevent(T *t, SpanOut *o, Py_ssize_t row, Py_ssize_t j) {
    uint64_t time = 0, dropped = 0, seen = 0;
    PyObject *name = NULL;
    const uint8_t *ks;
    Py_ssize_t kn;
    int more;
    CHECK(tch(t, '{'));
    if (tpeek(t) == '}') {
        t->p++;
    } else {
        do {
            CHECK(tkey(t, &ks, &kn));
            if (KEY("timeUnixNano")) {
                SEEN(0);
                CHECK(tuint(t, INT64_MAX_U, 1, &time));
            } else if (KEY("name")) {
                SEEN(1);
                if (!tnull(t)) CHECK(tstr(t, &name));
            } else if (KEY("attributes")) {
                SEEN(2);
                CHECK(tattrs(t, &o->ev_attrs));
            } else if (KEY("droppedAttributesCount")) {
                SEEN(3);
                CHECK(tuint(t, 0xFFFFFFFFULL, 0, &dropped));
            } else {
                goto fallback;
            }
            more = tnext(t, '}');
            if (more < 0) goto fallback;
        } while (more);
    }
    if (!name) {
        Py_INCREF(S_empty_str);
        name = S_empty_str;
    }
    PyObject *tup = Py_BuildValue("(nnKNNk)", row, j, (unsigned long long)time, name, attrs_size(&o->ev_attrs),
                                  (unsigned long)dropped);
    if (!tup) return -2;
    int rc = PyList_Append(o->events, tup);
    Py_DECREF(tup);
    return rc < 0 ? -2 : 0;
fallback:
    rc = FALLBACK;
    goto cleanup;
pyerr:
    rc = -2;
cleanup:
    Py_XDECREF(name);
    return rc;
}

static int tlink(T *t, SpanOut *o, Py_ssize_t row, Py_ssize_t j) {
    uint64_t flags = 0, dropped = 0, seen = 0;
    PyObject *tid_ = NULL, *sid = NULL, *ts = NULL;
    const uint8_t *ks;
    Py_ssize_t kn;
    int more;
    CHECK(tch(t, '{'));
    if (tpeek(t) == '}') {
        t->p++;
    } else {
        do {
            CHECK(tkey(t, &ks, &kn));
            if (KEY("traceId")) {
                SEEN(0);
                CHECK(tid(t, 16, &tid_));
            } else if (KEY("spanId")) {
                SEEN(1);
                CHECK(tid(t, 8, &sid));
            } else if (KEY("traceState")) {
                SEEN(2);
                CHECK(topt_str(t, &ts));
            } else if (KEY("attributes")) {
                SEEN(3);
                CHECK(tattrs(t, &o->lk_attrs));
            } else if (KEY("droppedAttributesCount")) {
                SEEN(4);
                CHECK(tuint(t, 0xFFFFFFFFULL, 0, &dropped));
            } else if (KEY("flags")) {
                SEEN(5);
                CHECK(tuint(t, 0xFFFFFFFFULL, 0, &flags));
            } else {
                goto fallback;
            }
            more = tnext(t, '}');
            if (more < 0) goto fallback;
        } while (more);
    }
    if (!tid_) tid_ = Py_NewRef(Py_None);
    if (!sid) sid = Py_NewRef(Py_None);
    if (!ts) ts = Py_NewRef(Py_None);
    PyObject *tup = Py_BuildValue("(nnNNNkNk)", row, j, tid_, sid, ts, (unsigned long)flags,
                                  attrs_size(&o->lk_attrs), (unsigned long)dropped);
    if (!tup) return -2;
    int rc = PyList_Append(o->links, tup);
    Py_DECREF(tup);
    return rc < 0 ? -2 : 0;
fallback:
    rc = FALLBACK;
    goto cleanup;
pyerr:
    rc = -2;
cleanup:
    Py_XDECREF(tid_);
    Py_XDECREF(sid);
    Py_XDECREF(ts);
    return rc;
}

/* A span's array of events or links, each through fn(t, o, row, index); *n counts them. */
typedef int (*child_fn)(T *, SpanOut *, Py_ssize_t, Py_ssize_t);
typedef struct {
    SpanOut *o;
    Py_ssize_t row, *n;
    child_fn fn;
} ChildArg;

static int tchild(T *t, void *arg) {
    ChildArg *c = arg;
    return c->fn(t, c->o, c->row, (*c->n)++);
}

static int tchildren(T *t, SpanOut *o, Py_ssize_t row, child_fn fn, Py_ssize_t *n) {
    ChildArg c = {o, row, n, fn};
    return tarray(t, tchild, &c);
}

static int tspan(T *t, SpanOut *o, PyObject *ci, long long rec) {
    uint64_t start = 0, end = 0, kind = 0, flags = 0, da = 0, de = 0, dl = 0, code = 0, seen = 0;
    PyObject *tid_ = NULL, *sid = NULL, *pid = NULL, *ts = NULL, *name = NULL, *msg = NULL;
    Py_ssize_t row = rows_len(o->rows), n_ev = 0, n_lk = 0;
    /* rows as Cols: ids and strings are written from these, without objects */
    Cols *R = Py_IS_TYPE(o->rows, &ColsType) ? (Cols *)o->rows : NULL;
    uint8_t idb[3][16];
    int idp[3] = {0, 0, 0};
    const uint8_t *tss = NULL, *nms = NULL, *mss = NULL;
    Py_ssize_t tsn = 0, nmn = 0, msn = 0;
    const uint8_t *ks;
    Py_ssize_t kn;
    int more;
    CHECK(tch(t, '{'));
    if (tpeek(t) == '}') {
        t->p++;
    } else {
        do {
            CHECK(tkey(t, &ks, &kn));
            if (KEY("traceId")) {
                SEEN(0);
                CHECK(R ? tid_raw(t, 16, idb[0], &idp[0]) : tid(t, 16, &tid_));
            } else if (KEY("spanId")) {
                SEEN(1);
                CHECK(R ? tid_raw(t, 8, idb[1], &idp[1]) : tid(t, 8, &sid));
            } else if (KEY("parentSpanId")) {
                SEEN(2);
                CHECK(R ? tid_raw(t, 8, idb[2], &idp[2]) : tid(t, 8, &pid));
            } else if (KEY("traceState")) {
                SEEN(3);
                if (!R) CHECK(topt_str(t, &ts));
                else if (!tnull(t)) CHECK(tstr_col(t, &tss, &tsn, &ts));
            } else if (KEY("flags")) {
                SEEN(4);
                CHECK(tuint(t, 0xFFFFFFFFULL, 0, &flags));
            } else if (KEY("name")) {
                SEEN(5);
                if (!tnull(t)) CHECK(R ? tstr_col(t, &nms, &nmn, &name) : tstr(t, &name));
            } else if (KEY("kind")) {
                SEEN(6);
                CHECK(tuint(t, 5, 0, &kind));
            } else if (KEY("startTimeUnixNano")) {
                SEEN(7);
                CHECK(tuint(t, INT64_MAX_U, 1, &start));
            } else if (KEY("endTimeUnixNano")) {
                SEEN(8);
                CHECK(tuint(t, INT64_MAX_U, 1, &end));
            } else if (KEY("attributes")) {
                SEEN(9);
                CHECK(tattrs(t, &o->attrs));
            } else if (KEY("droppedAttributesCount")) {
                SEEN(10);
                CHECK(tuint(t, 0xFFFFFFFFULL, 0, &da));
            } else if (KEY("events")) {
                SEEN(11);
                if (!tnull(t)) CHECK(tchildren(t, o, row, tevent, &n_ev));
            } else if (KEY("droppedEventsCount")) {
                SEEN(12);
                CHECK(tuint(t, 0xFFFFFFFFULL, 0, &de));
            } else if (KEY("links")) {
                SEEN(13);
                if (!tnull(t)) CHECK(tchildren(t, o, row, tlink, &n_lk));
            } else if (KEY("droppedLinksCount")) {
                SEEN(14);
                CHECK(tuint(t, 0xFFFFFFFFULL, 0, &dl));
            } else if (KEY("status")) {
                SEEN(15);
                if (!tnull(t)) {
                    uint64_t sseen = 0;
                    CHECK(tch(t, '{'));
                    if (tpeek(t) == '}') {
                        t->p++;
                    } else {
                        do {
                            CHECK(tkey(t, &ks, &kn));
                            if (KEY("code") && !(sseen & 1)) {
                                sseen |= 1;
                                CHECK(tuint(t, 2, 0, &code));
                            } else if (KEY("message") && !(sseen & 2)) {
                                sseen |= 2;
                                if (!R) CHECK(topt_str(t, &msg));
                                else if (!tnull(t)) CHECK(tstr_col(t, &mss, &msn, &msg));
                            } else {
                                goto fallback;
                            }
                            more = tnext(t, '}');
                            if (more < 0) goto fallback;
                        } while (more);
                    }
                }
            } else {
                goto fallback;
            }
            more = tnext(t, '}');
            if (more < 0) goto fallback;
        } while (more);
    }
    if (R) {
        long long cv = PyLong_AsLongLong(ci);
        if ((cv == -1 && PyErr_Occurred()) || cols_reserve(R) < 0) goto pyerr;
        cols_id(R, 0, idp[0] ? idb[0] : NULL);
        cols_id(R, 1, idp[1] ? idb[1] : NULL);
        cols_id(R, 2, idp[2] ? idb[2] : NULL);
        if (cols_tstr(R, 3, tss, tsn, ts, 1) < 0 || cols_tstr(R, 5, nms, nmn, name, 0) < 0 ||
            cols_tstr(R, 10, mss, msn, msg, 1) < 0) {
            cols_truncate(R, R->n);
            goto pyerr;
        }
        cols_i(R, 4, (int64_t)flags);
        cols_i(R, 6, (int64_t)kind);
        cols_i(R, 7, (int64_t)start);
        cols_i(R, 8, (int64_t)end);
        cols_i(R, 9, (int64_t)code);
        cols_i(R, 11, attrs_len(&o->attrs));
        cols_i(R, 12, (int64_t)da);
        cols_i(R, 13, n_ev);
        cols_i(R, 14, (int64_t)de);
        cols_i(R, 15, n_lk);
        cols_i(R, 16, (int64_t)dl);
        cols_i(R, 17, cv);
        cols_i(R, 18, rec);
        cols_commit(R);
        Py_XDECREF(ts);
        Py_XDECREF(name);
        Py_XDECREF(msg);
        return 0;
    }
    if (!tid_) tid_ = Py_NewRef(Py_None);
    if (!sid) sid = Py_NewRef(Py_None);
    if (!pid) pid = Py_NewRef(Py_None);
    if (!ts) ts = Py_NewRef(Py_None);
    if (!name) name = Py_NewRef(S_empty_str);
    if (!msg) msg = Py_NewRef(Py_None);
    PyObject *tup = Py_BuildValue("(NNNNkNkKKkNNknknkOL)", tid_, sid, pid, ts, (unsigned long)flags, name,
                                  (unsigned long)kind, (unsigned long long)start, (unsigned long long)end,
                                  (unsigned long)code, msg, attrs_size(&o->attrs), (unsigned long)da, n_ev,
                                  (unsigned long)de, n_lk, (unsigned long)dl, ci, rec);
    if (!tup) return -2;
    int rc = rows_append(o->rows, tup);
    Py_DECREF(tup);
    return rc;
fallback:
    rc = FALLBACK;
    goto cleanup;
pyerr:
    rc = -2;
cleanup:
    Py_XDECREF(tid_);
    Py_XDECREF(sid);
    Py_XDECREF(pid);
    Py_XDECREF(ts);
    Py_XDECREF(name);
    Py_XDECREF(msg);
    return rc;
}

static int tlog(T *t, LogOut *o, PyObject *ci, long long rec) {
    uint64_t time = 0, observed = 0, sev = 0, da = 0, flags = 0, seen = 0;
    PyObject *st = NULL, *btag = NULL, *btext = NULL, *tid_ = NULL, *sid = NULL, *en = NULL;
    const uint8_t *ks;
    Py_ssize_t kn;
    int more;
    CHECK(tch(t, '{'));
    if (tpeek(t) == '}') {
        t->p++;
    } else {
        do {
            CHECK(tkey(t, &ks, &kn));
            if (KEY("timeUnixNano")) {
                SEEN(0);
                CHECK(tuint(t, INT64_MAX_U, 1, &time));
            } else if (KEY("observedTimeUnixNano")) {
                SEEN(1);
                CHECK(tuint(t, INT64_MAX_U, 1, &observed));
            } else if (KEY("severityNumber")) {
                SEEN(2);
                CHECK(tuint(t, 24, 0, &sev));
            } else if (KEY("severityText")) {
                SEEN(3);
                CHECK(topt_str(t, &st));
            } else if (KEY("body")) {
                SEEN(4);
                if (!tnull(t)) CHECK(tany(t, &btag, &btext, NULL));
            } else if (KEY("attributes")) {
                SEEN(5);
                CHECK(tattrs(t, &o->attrs));
            } else if (KEY("droppedAttributesCount")) {
                SEEN(6);
                CHECK(tuint(t, 0xFFFFFFFFULL, 0, &da));
            } else if (KEY("flags")) {
                SEEN(7);
                CHECK(tuint(t, 0xFFFFFFFFULL, 0, &flags));
            } else if (KEY("traceId")) {
                SEEN(8);
                CHECK(tid(t, 16, &tid_));
            } else if (KEY("spanId")) {
                SEEN(9);
                CHECK(tid(t, 8, &sid));
            } else if (KEY("eventName")) {
                SEEN(10);
                CHECK(topt_str(t, &en));
            } else {
                goto fallback;
            }
            more = tnext(t, '}');
            if (more < 0) goto fallback;
        } while (more);
    }
    if (!st) st = Py_NewRef(Py_None);
    if (!btag) btag = Py_NewRef(Py_None);
    if (!btext) btext = Py_NewRef(Py_None);
    if (!tid_) tid_ = Py_NewRef(Py_None);
    if (!sid) sid = Py_NewRef(Py_None);
    if (!en) en = Py_NewRef(Py_None);
    PyObject *tup = Py_BuildValue("(KKkNNNNkkNNNOL)", (unsigned long long)time, (unsigned long long)observed,
                                  (unsigned long)sev, st, btext, btag, attrs_size(&o->attrs), (unsigned long)da,
                                  (unsigned long)flags, tid_, sid, en, ci, rec);
    if (!tup) return -2;
    int rc = rows_append(o->rows, tup);
    Py_DECREF(tup);
    return rc;
fallback:
    rc = FALLBACK;
    goto cleanup;
pyerr:
    rc = -2;
cleanup:
    Py_XDECREF(st);
    Py_XDECREF(btag);
    Py_XDECREF(btext);
    Py_XDECREF(tid_);
    Py_XDECREF(sid);
    Py_XDECREF(en);
    return rc;
}

typedef struct {
    Py_ssize_t row0, row1;
    PyObject *scope, *surl;
} TScope;

typedef struct {
    int kind;
    SpanOut *so;
    LogOut *lo;
    PyObject *ctx_fn;
    long long rec;
    PyObject *ci;             /* context of the records being read */
    PyObject *res, *url;      /* the current resource header, as far as read */
    TScope *sc;               /* the scopes of the current resource, for a late resource header */
    Py_ssize_t nsc, capsc;
} TReq;

static PyObject *trows(TReq *q) { return q->kind == 0 ? q->so->rows : q->lo->rows; }

/* The context index of (resource, scope) headers: ctx_fn, or FALLBACK when it returns None. */
static int tctx(TReq *q, PyObject *scope, PyObject *surl, PyObject **ci) {
    *ci = PyObject_CallFunction(q->ctx_fn, "iOOOO", 0, q->res ? q->res : Py_None, q->url ? q->url : Py_None,
                                scope ? scope : Py_None, surl ? surl : Py_None);
    if (!*ci) return -2;
    if (*ci == Py_None) {
        Py_CLEAR(*ci);
        return FALLBACK;
    }
    return 0;
}

/* A header that comes after the records (protobuf field order puts schemaUrl last): give the rows
 * already built from rows[row0:row1] their right context. They are tuples only the list holds. */
static int tpatch(TReq *q, Py_ssize_t row0, Py_ssize_t row1, PyObject *scope, PyObject *surl) {
    PyObject *ci;
    int rc = tctx(q, scope, surl, &ci);
    if (rc) return rc;
    PyObject *rows = trows(q);
    int col = q->kind == 0 ? 17 : 12;
    if (Py_IS_TYPE(rows, &ColsType)) {
        long long v = PyLong_AsLongLong(ci);
        Py_DECREF(ci);
        if (v == -1 && PyErr_Occurred()) return -2;
        for (Py_ssize_t i = row0; i < row1; i++) ((Cols *)rows)->c[col].iv[i] = v;
        return 0;
    }
    for (Py_ssize_t i = row0; i < row1; i++) {
        PyObject *tup = PyList_GET_ITEM(rows, i);
        PyObject *old = PyTuple_GET_ITEM(tup, col);
        Py_INCREF(ci);
        PyTuple_SET_ITEM(tup, col, ci);
        Py_DECREF(old);
    }
    Py_DECREF(ci);
    return 0;
}

static int trecord(T *t, void *arg) {
    TReq *q = arg;
    int rc = q->kind == 0 ? tspan(t, q->so, q->ci, q->rec) : tlog(t, q->lo, q->ci, q->rec);
    if (!rc) q->rec++;
    return rc;
}

/* {"scope": {...}, "spans"|"logRecords": [...], "schemaUrl": "..."} in any order */
static int tscope(T *t, void *arg) {
    TReq *q = arg;
    PyObject *scope = NULL, *surl = NULL;
    Py_ssize_t row0 = rows_len(trows(q));
    int seen_records = 0, late = 0, rc = 0, more;
    const uint8_t *ks;
    Py_ssize_t kn;
    uint64_t seen = 0;
    if (tch(t, '{')) return FALLBACK;
    more = tpeek(t) != '}';
    if (!more) t->p++; /* {}: no records, but an (empty) scope all the same */
    while (more) {
        if ((rc = tkey(t, &ks, &kn))) goto out;
        if (KEY("scope")) {
            if (seen & 1) goto fallback;
            seen |= 1;
            late |= seen_records;
            if ((rc = traw(t, &scope))) goto out;
        } else if (KEY("schemaUrl")) {
            if (seen & 2) goto fallback;
            seen |= 2;
            late |= seen_records;
            if (!tnull(t) && (rc = tstr(t, &surl))) goto out;
        } else if ((q->kind == 0 && KEY("spans")) || (q->kind == 1 && KEY("logRecords"))) {
            if (seen & 4) goto fallback;
            seen |= 4;
            if (tnull(t)) goto next;
            if ((rc = tctx(q, scope, surl, &q->ci))) goto out;
            seen_records = 1;
            rc = tarray(t, trecord, q);
            Py_CLEAR(q->ci);
            if (rc) goto out;
        } else {
            goto fallback;
        }
    next:
        more = tnext(t, '}');
        if (more < 0) goto fallback;
    }
    Py_ssize_t row1 = rows_len(trows(q));
    if (late && (rc = tpatch(q, row0, row1, scope, surl))) goto out;
    if (q->nsc == q->capsc) {
        Py_ssize_t cap = q->capsc ? 2 * q->capsc : 8;
        TScope *sc = PyMem_Realloc(q->sc, cap * sizeof(TScope));
        if (!sc) {
            PyErr_NoMemory();
            rc = -2;
            goto out;
        }
        q->sc = sc;
        q->capsc = cap;
    }
    q->sc[q->nsc++] = (TScope){row0, row1, scope, surl}; /* takes the references */
    return 0;
fallback:
    rc = FALLBACK;
out:
    Py_XDECREF(scope);
    Py_XDECREF(surl);
    return rc;
}

static void tscopes_clear(TReq *q) {
    for (Py_ssize_t i = 0; i < q->nsc; i++) {
        Py_XDECREF(q->sc[i].scope);
        Py_XDECREF(q->sc[i].surl);
    }
    q->nsc = 0;
}

/* {"resource": {...}, "scopeSpans"|"scopeLogs": [...], "schemaUrl": "..."} in any order */
static int tresource(T *t, void *arg) {
    TReq *q = arg;
    int seen_scopes = 0, late = 0, rc = 0, more;
    const uint8_t *ks;
    Py_ssize_t kn;
    uint64_t seen = 0;
    if (tch(t, '{')) return FALLBACK;
    more = tpeek(t) != '}';
    if (!more) t->p++; /* {}: an (empty) resource all the same */
    while (more) {
        if ((rc = tkey(t, &ks, &kn))) goto out;
        if (KEY("resource")) {
            if (seen & 1) goto fallback;
            seen |= 1;
            late |= seen_scopes;
            if ((rc = traw(t, &q->res))) goto out;
        } else if (KEY("schemaUrl")) {
            if (seen & 2) goto fallback;
            seen |= 2;
            late |= seen_scopes;
            if (!tnull(t) && (rc = tstr(t, &q->url))) goto out;
        } else if ((q->kind == 0 && KEY("scopeSpans")) || (q->kind == 1 && KEY("scopeLogs"))) {
            if (seen & 4) goto fallback;
            seen |= 4;
            seen_scopes = 1;
            if (!tnull(t) && (rc = tarray(t, tscope, q))) goto out;
        } else {
            goto fallback;
        }
        more = tnext(t, '}');
        if (more < 0) goto fallback;
    }
    for (Py_ssize_t i = 0; late && i < q->nsc; i++) {
        TScope *sc = &q->sc[i];
        if (sc->row1 > sc->row0 && (rc = tpatch(q, sc->row0, sc->row1, sc->scope, sc->surl))) goto out;
    }
    /* the final headers: register the resource and each scope, as the dict decoder does */
    for (Py_ssize_t i = -1; i < q->nsc; i++) {
        PyObject *x = PyObject_CallFunction(q->ctx_fn, "iOOOO", i < 0 ? 1 : 2, q->res ? q->res : Py_None,
                                            q->url ? q->url : Py_None,
                                            i < 0 || !q->sc[i].scope ? Py_None : q->sc[i].scope,
                                            i < 0 || !q->sc[i].surl ? Py_None : q->sc[i].surl);
        if (!x) {
            rc = -2;
            goto out;
        }
        int none = x == Py_None;
        Py_DECREF(x);
        if (none) goto fallback;
    }
    goto out;
fallback:
    rc = FALLBACK;
out:
    tscopes_clear(q);
    Py_CLEAR(q->res);
    Py_CLEAR(q->url);
    return rc;
}

static int tresources(T *t, void *arg) { return tarray(t, tresource, arg); }

PyDoc_STRVAR(decode_json_text_doc,
"decode_json_text(kind, text, first_record, rows, attrs, events, links, event_attrs, link_attrs,\n"
"                 ctx_fn) -> int | None\n\n"
"Decode one OTLP/JSON message (kind 0: {\"resourceSpans\": ...}, 1: {\"resourceLogs\": ...}) from its\n"
"text into the batch lists, when it is in the strict common form; returns the record index after\n"
"its last record. Otherwise appends nothing and returns None: decode it from parsed JSON.\n"
"ctx_fn(mode, resource_json, schema_url, scope_json, scope_schema_url): mode 0 gives the context\n"
"index of the headers read so far (None: give up); at the end of each resource block, mode 1\n"
"registers the resource and mode 2 each scope, with their final headers (None: give up).");

static PyObject *decode_json_text(PyObject *self, PyObject *args) {
    int kind;
    Py_buffer buf;
    long long rec;
    PyObject *rows, *attrs, *events, *links, *ev_attrs, *lk_attrs, *ctx_fn;
    if (!PyArg_ParseTuple(args, "iy*LOOOOOOO", &kind, &buf, &rec, &rows, &attrs, &events, &links, &ev_attrs,
                          &lk_attrs, &ctx_fn))
        return NULL;
    if (rows_ok(rows) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    SpanOut so;
    LogOut lo;
    SpanMark sm;
    LogMark lm;
    TReq q = {kind, &so, &lo, ctx_fn, rec, NULL, NULL, NULL, NULL, 0, 0};
    PyObject *result = NULL;
    int rc;
    if (kind == 0) {
        so.rows = rows;
        so.events = events;
        so.links = links;
        if (!PyList_Check(events) || !PyList_Check(links) || get_attrs(attrs, &so.attrs) < 0 ||
            get_attrs(ev_attrs, &so.ev_attrs) < 0 || get_attrs(lk_attrs, &so.lk_attrs) < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "events and links must be lists");
            goto out;
        }
        span_mark(&so, &sm);
    } else {
        lo.rows = rows;
        if (get_attrs(attrs, &lo.attrs) < 0) goto out;
        log_mark(&lo, &lm);
    }
    T t = {buf.buf, (const uint8_t *)buf.buf + buf.len};
    const uint8_t *ks;
    Py_ssize_t kn;
    rc = tch(&t, '{');
    if (!rc && tpeek(&t) == '}') goto fell_back; /* {}: let the dict path count it */
    if (!rc) rc = tkey(&t, &ks, &kn);
    if (!rc && !((kind == 0 && KEY("resourceSpans")) || (kind == 1 && KEY("resourceLogs")))) rc = FALLBACK;
    if (!rc && !tnull(&t)) rc = tresources(&t, &q);
    if (!rc) rc = tch(&t, '}');
    if (!rc) {
        tws(&t);
        if (t.p != t.end) rc = FALLBACK; /* trailing text */
    }
    PyMem_Free(q.sc);
    if (rc == -2) goto undo;
    if (rc) goto fell_back;
    result = PyLong_FromLongLong(q.rec);
    goto out;
fell_back:
    if ((kind == 0 ? span_rollback(&so, &sm) : log_rollback(&lo, &lm)) < 0) goto out;
    result = Py_NewRef(Py_None);
    goto out;
undo: /* a Python error: undo, then propagate it */
    {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (kind == 0) span_rollback(&so, &sm);
        else log_rollback(&lo, &lm);
        PyErr_Restore(et, ev, tb);
    }
out:
    PyBuffer_Release(&buf);
    return result;
}

/* ---------------------------------------------------------------------------------------------- */
/* Splitting a large JSON document into its top-level arrays' items without parsing it whole. */

PyDoc_STRVAR(json_scan_doc,
"json_scan(buf, pos, depth, in_string, escape, str_start, item_start) -> (events, depth, in_string,\n"
"          escape, str_start, item_start)\n\n"
"Scan buf[pos:] of a JSON document, continuing from the given state. events: (0, a, b) for a\n"
"string at depth 1 (a top-level key, or value) spanning buf[a:b]; (1, a, 0) for a '[' opening\n"
"a top-level array at a; (2, a, b) for a complete object or array item of such an array in\n"
"buf[a:b]. Offsets in the state are into buf (-1: none). Raises ValueError on unbalanced brackets.");

static PyObject *json_scan(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t pos, str_start, item_start;
    int depth, in_string, escape;
    if (!PyArg_ParseTuple(args, "y*nippnn", &buf, &pos, &depth, &in_string, &escape, &str_start, &item_start))
        return NULL;
    const uint8_t *b = buf.buf;
    Py_ssize_t n = buf.len;
    PyObject *events = PyList_New(0);
    if (!events) goto fail;
    for (Py_ssize_t i = pos; i < n; i++) {
        uint8_t ch = b[i];
        if (in_string) {
            if (escape)
                escape = 0;
            else if (ch == '\\')
                escape = 1;
            else if (ch == '"') {
                in_string = 0;
                if (depth == 1) {
                    PyObject *ev = Py_BuildValue("(inn)", 0, str_start + 1, i);
                    if (!ev || PyList_Append(events, ev) < 0) {
                        Py_XDECREF(ev);
                        goto fail;
                    }
                    Py_DECREF(ev);
                }
            }
            continue;
        }
        switch (ch) {
        case '"':
            in_string = 1;
            str_start = i;
            break;
        case '{':
        case '[':
            if (depth == 1 && ch == '[') {
                PyObject *ev = Py_BuildValue("(inn)", 1, i, (Py_ssize_t)0);
                if (!ev || PyList_Append(events, ev) < 0) {
                    Py_XDECREF(ev);
                    goto fail;
                }
                Py_DECREF(ev);
            }
            if (depth == 2 && item_start < 0) item_start = i;
            depth++;
            break;
        case '}':
        case ']':
            depth--;
            if (depth < 0) {
                PyErr_Format(PyExc_ValueError, "unbalanced '%c' at byte %zd", ch, i);
                goto fail;
            }
            if (depth == 2 && item_start >= 0) {
                PyObject *ev = Py_BuildValue("(inn)", 2, item_start, i + 1);
                if (!ev || PyList_Append(events, ev) < 0) {
                    Py_XDECREF(ev);
                    goto fail;
                }
                Py_DECREF(ev);
                item_start = -1;
            }
            break;
        }
    }
    PyBuffer_Release(&buf);
    return Py_BuildValue("(Niiinn)", events, depth, in_string, escape, str_start, item_start);
fail:
    Py_XDECREF(events);
    PyBuffer_Release(&buf);
    return NULL;
}

PyDoc_STRVAR(scope_header_doc,
"scope_header(buf) -> (scope, schema_url)\n\n"
"Fields 1 and 3 of a serialised ScopeSpans / ScopeLogs / Resource* message: the bytes of field 1\n"
"(occurrences concatenated, as protobuf merges them; b'' if absent) and of the last field 3\n"
"(b'' if absent). Raises ValueError on malformed wire format.");

static PyObject *scope_header(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    Rd r = {buf.buf, (const uint8_t *)buf.buf + buf.len};
    PyObject *f1 = PyBytes_FromStringAndSize(NULL, 0);
    const uint8_t *up = NULL;
    Py_ssize_t un = 0;
    while (f1 && r.p < r.end) {
        uint64_t key;
        if (rd_tag(&r, &key) < 0) goto bad;
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if ((f == 1 || f == 3) && wt == 2) {
            const uint8_t *s;
            Py_ssize_t sn;
            if (rd_bytes(&r, &s, &sn) < 0) goto bad;
            if (f == 3) {
                up = s;
                un = sn;
            } else {
                PyObject *more = PyBytes_FromStringAndSize((const char *)s, sn);
                if (!more) {
                    Py_CLEAR(f1);
                    break;
                }
                PyBytes_ConcatAndDel(&f1, more);
            }
        } else if (skip_field(&r, f, wt) < 0) {
            goto bad;
        }
    }
    PyBuffer_Release(&buf);
    if (!f1) return NULL;
    return Py_BuildValue("(Ny#)", f1, up ? (const char *)up : "", un);
bad:
    PyBuffer_Release(&buf);
    Py_XDECREF(f1);
    PyErr_SetString(PyExc_ValueError, "malformed protobuf");
    return NULL;
}

/* The buffers of n objects (PyBUF_SIMPLE), a None among them as an empty one (.obj NULL): 0, or -1
 * with none held. */
static int buffers_get(Py_buffer *b, PyObject *const *objs, int n) {
    for (int i = 0; i < n; i++) {
        memset(&b[i], 0, sizeof b[i]);
        if (objs[i] != Py_None && PyObject_GetBuffer(objs[i], &b[i], PyBUF_SIMPLE) < 0) {
            while (i--)
                if (b[i].obj) PyBuffer_Release(&b[i]);
            return -1;
        }
    }
    return 0;
}

static void buffers_release(Py_buffer *b, int n) {
    for (int i = 0; i < n; i++)
        if (b[i].obj) PyBuffer_Release(&b[i]);
}

PyDoc_STRVAR(take_strings_doc,
             "take_strings(offsets, data, validity, offset, length, indices, index_width) -> (offsets,\n"
             "data, validity, null_count) or None: the Arrow string column (int32 offsets) of `length`\n"
             "values at `offset` in the\n"
             "given buffers gathered at `indices` (int32 or int64 by `index_width`; a negative index gives\n"
             "a null, as does a null source value), as the buffers of a new string column (validity None\n"
             "without nulls). None when the result would pass 2 GiB of data (the caller takes it with\n"
             "Arrow instead). What pyarrow's `take` gives, in two passes: lengths, then one copy each.");

static PyObject *take_strings(PyObject *self, PyObject *args) {
    PyObject *o[4]; /* offsets, data, indices, validity */
    Py_ssize_t base, length, width;
    if (!PyArg_ParseTuple(args, "OOOnnOn", &o[0], &o[1], &o[3], &base, &length, &o[2], &width)) return NULL;
    if (o[0] == Py_None || o[1] == Py_None || o[2] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "take_strings: offsets, data and indices are required");
        return NULL;
    }
    Py_buffer bufs[4];
    if (buffers_get(bufs, o, 4) < 0) return NULL;
    Py_buffer ob = bufs[0], db = bufs[1], ib = bufs[2], vb = bufs[3];
    int have_v = vb.obj != NULL;
    PyObject *res = NULL, *offs = NULL, *data = NULL, *valid = NULL;
    const int32_t *so = (const int32_t *)ob.buf + base;
    Py_ssize_t src_n = length;
    const uint8_t *sv = have_v ? (const uint8_t *)vb.buf : NULL;
    Py_ssize_t n = (width == 8) ? ib.len / 8 : ib.len / 4;
    const int64_t *i64 = (const int64_t *)ib.buf;
    const int32_t *i32 = (const int32_t *)ib.buf;
    if ((width != 4 && width != 8) || length < 0 || base < 0 || ob.len / 4 < base + length + 1) {
        PyErr_SetString(PyExc_ValueError, "take_strings: bad buffers");
        goto done;
    }
    offs = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    if (!offs) goto done;
    int32_t *q = (int32_t *)PyBytes_AS_STRING(offs);
    Py_ssize_t nulls = 0, total = 0;
    q[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t k = width == 8 ? i64[i] : (int64_t)i32[i];
        if (k >= src_n) {
            PyErr_Format(PyExc_IndexError, "take_strings: index %lld out of bounds", (long long)k);
            goto done;
        }
        if (k < 0 || (sv && !((sv[(base + k) >> 3] >> ((base + k) & 7)) & 1))) {
            nulls++;
        } else {
            total += so[k + 1] - so[k];
            if (total > INT32_MAX) {
                res = Py_None;
                Py_INCREF(res);
                goto done;
            }
        }
        q[i + 1] = (int32_t)total;
    }
    data = PyBytes_FromStringAndSize(NULL, total);
    if (!data) goto done;
    char *d = PyBytes_AS_STRING(data);
    const char *src = (const char *)db.buf;
    if (nulls) {
        Py_ssize_t nb = (n + 7) / 8;
        valid = PyBytes_FromStringAndSize(NULL, nb);
        if (!valid) goto done;
        uint8_t *v = (uint8_t *)PyBytes_AS_STRING(valid);
        memset(v, 0, nb);
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t k = width == 8 ? i64[i] : (int64_t)i32[i];
            int32_t len = q[i + 1] - q[i];
            if (k < 0 || (sv && !((sv[(base + k) >> 3] >> ((base + k) & 7)) & 1))) continue;
            v[i >> 3] |= (uint8_t)(1u << (i & 7));
            memcpy(d + q[i], src + so[k], (size_t)len);
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t k = width == 8 ? i64[i] : (int64_t)i32[i];
            memcpy(d + q[i], src + so[k], (size_t)(q[i + 1] - q[i]));
        }
        valid = Py_None;
        Py_INCREF(valid);
    }
    res = Py_BuildValue("(NNNn)", offs, data, valid, nulls);
    offs = data = valid = NULL;
done:
    Py_XDECREF(offs);
    Py_XDECREF(data);
    Py_XDECREF(valid);
    buffers_release(bufs, 4);
    return res;
}

PyDoc_STRVAR(promote_index_doc,
             "promote_index(key_ids, ends, col_of, prio_of, ncols) -> (index, counts): for promoted\n"
             "columns, which attribute position fills each (column, row) cell. key_ids: int32 key id per\n"
             "attribute position; ends: int64 end offset per row; col_of / prio_of: int16 per key id, the\n"
             "column a key fills (-1: none) and its priority there (0 first). index: int64 bytes of\n"
             "ncols * rows cells, column-major, the position of the first occurrence of the highest\n"
             "priority key present in the row, -1 where none; counts: int64 bytes, filled cells per column.");

static PyObject *promote_index(PyObject *self, PyObject *args) {
    PyObject *o[4]; /* key ids, ends, column of a key, priority of a key */
    Py_ssize_t ncols;
    if (!PyArg_ParseTuple(args, "OOOOn", &o[0], &o[1], &o[2], &o[3], &ncols)) return NULL;
    Py_buffer bufs[4];
    if (buffers_get(bufs, o, 4) < 0) return NULL;
    Py_buffer kb = bufs[0], eb = bufs[1], cb = bufs[2], pb = bufs[3];
    PyObject *res = NULL, *idx = NULL, *cnt = NULL;
    int16_t *best = NULL;
    const int32_t *kid = (const int32_t *)kb.buf;
    const int64_t *ends = (const int64_t *)eb.buf;
    const int16_t *col = (const int16_t *)cb.buf, *prio = (const int16_t *)pb.buf;
    Py_ssize_t m = kb.len / 4, n = eb.len / 8, nk = cb.len / 2;
    if (ncols < 0 || pb.len / 2 != nk) {
        PyErr_SetString(PyExc_ValueError, "promote_index: bad arguments");
        goto done;
    }
    idx = PyBytes_FromStringAndSize(NULL, ncols * n * 8);
    cnt = PyBytes_FromStringAndSize(NULL, ncols * 8);
    best = PyMem_Malloc(ncols * n * 2 + 2);
    if (!idx || !cnt || !best) {
        if (!best) PyErr_NoMemory();
        goto done;
    }
    int64_t *out = (int64_t *)PyBytes_AS_STRING(idx), *count = (int64_t *)PyBytes_AS_STRING(cnt);
    for (Py_ssize_t i = 0; i < ncols * n; i++) out[i] = -1;
    for (Py_ssize_t c = 0; c < ncols; c++) count[c] = 0;
    Py_ssize_t p = 0;
    for (Py_ssize_t r = 0; r < n; r++) {
        Py_ssize_t e = (Py_ssize_t)ends[r];
        if (e > m) e = m;
        for (; p < e; p++) {
            int32_t k = kid[p];
            if (k < 0 || k >= nk) continue;
            int16_t c = col[k];
            if (c < 0 || c >= ncols) continue;
            Py_ssize_t cell = (Py_ssize_t)c * n + r;
            if (out[cell] < 0) {
                out[cell] = p;
                best[cell] = prio[k];
                count[c]++;
            } else if (prio[k] < best[cell]) {
                out[cell] = p;
                best[cell] = prio[k];
            }
        }
    }
    res = Py_BuildValue("(NN)", idx, cnt);
    idx = cnt = NULL;
done:
    PyMem_Free(best);
    Py_XDECREF(idx);
    Py_XDECREF(cnt);
    buffers_release(bufs, 4);
    return res;
}

PyDoc_STRVAR(int_strings_doc,
             "int_strings(offsets, data, validity, offset, n) -> (values, validity, null_count): the n\n"
             "strings of an Arrow string column (int32 offsets, at `offset`) read as integers: a value\n"
             "written as ^-?[0-9]{1,18}$ gives its int64, anything else (and a null) a null. values:\n"
             "int64 bytes (0 under a null); validity: an LSB-first bitmap, or None without nulls.");

static PyObject *int_strings(PyObject *self, PyObject *args) {
    PyObject *o[3]; /* offsets, data, validity */
    Py_ssize_t base, n;
    if (!PyArg_ParseTuple(args, "OOOnn", &o[0], &o[1], &o[2], &base, &n)) return NULL;
    if (o[0] == Py_None || o[1] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "int_strings: offsets and data are required");
        return NULL;
    }
    Py_buffer bufs[3];
    if (buffers_get(bufs, o, 3) < 0) return NULL;
    Py_buffer ob = bufs[0], db = bufs[1], vb = bufs[2];
    int have_v = vb.obj != NULL;
    PyObject *res = NULL, *vals = NULL, *valid = NULL;
    if (base < 0 || n < 0 || ob.len / 4 < base + n + 1) {
        PyErr_SetString(PyExc_ValueError, "int_strings: bad buffers");
        goto done;
    }
    const int32_t *so = (const int32_t *)ob.buf + base;
    const uint8_t *sv = have_v ? (const uint8_t *)vb.buf : NULL, *src = (const uint8_t *)db.buf;
    Py_ssize_t nb = (n + 7) / 8, nulls = 0;
    vals = PyBytes_FromStringAndSize(NULL, n * 8);
    valid = PyBytes_FromStringAndSize(NULL, nb);
    if (!vals || !valid) goto done;
    int64_t *out = (int64_t *)PyBytes_AS_STRING(vals);
    uint8_t *v = (uint8_t *)PyBytes_AS_STRING(valid);
    memset(v, 0, nb);
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = 0;
        if (sv && !((sv[(base + i) >> 3] >> ((base + i) & 7)) & 1)) {
            nulls++;
            continue;
        }
        const uint8_t *p = src + so[i], *e = src + so[i + 1];
        int neg = p < e && *p == '-';
        p += neg;
        Py_ssize_t len = e - p;
        if (len < 1 || len > 18) {
            nulls++;
            continue;
        }
        int64_t x = 0;
        for (; p < e && *p >= '0' && *p <= '9'; p++) x = x * 10 + (*p - '0');
        if (p != e) {
            nulls++;
            continue;
        }
        out[i] = neg ? -x : x;
        v[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    if (!nulls) {
        Py_DECREF(valid);
        valid = Py_None;
        Py_INCREF(valid);
    }
    res = Py_BuildValue("(NNn)", vals, valid, nulls);
    vals = valid = NULL;
done:
    Py_XDECREF(vals);
    Py_XDECREF(valid);
    buffers_release(bufs, 3);
    return res;
}

static PyMethodDef methods[] = {
    {"int_strings", int_strings, METH_VARARGS, int_strings_doc},
    {"promote_index", promote_index, METH_VARARGS, promote_index_doc},
    {"take_strings", take_strings, METH_VARARGS, take_strings_doc},
    {"scope_header", scope_header, METH_VARARGS, scope_header_doc},
    {"json_scan", json_scan, METH_VARARGS, json_scan_doc},
    {"decode_json_text", decode_json_text, METH_VARARGS, decode_json_text_doc},
    {"decode_request", decode_request, METH_VARARGS, decode_request_doc},
    {"decode_json_spans", decode_json_spans, METH_VARARGS, decode_json_spans_doc},
    {"decode_json_logs", decode_json_logs, METH_VARARGS, decode_json_logs_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wire", "OTLP protobuf wire decoding for ingest.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wire(void) {
    if (pb_init("_wire") < 0) return NULL;
    JK = PyDict_New();
    if (!JK) return NULL;
    for (int i = 0; i < J_COUNT; i++) {
        PyObject *k = PyUnicode_InternFromString(JK_NAMES[i]);
        PyObject *v = PyLong_FromLong(i);
        if (!k || !v || PyDict_SetItem(JK, k, v) < 0) return NULL;
        if (i == J_key) JK_NAMES_OBJ_key = k;
        else if (i == J_value) JK_NAMES_OBJ_value = k;
        else Py_DECREF(k);
        Py_DECREF(v);
    }
    if (PyType_Ready(&IdBufType) < 0 || PyType_Ready(&StrBufType) < 0 || PyType_Ready(&ColsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&IdBufType);
    Py_INCREF(&StrBufType);
    Py_INCREF(&ColsType);
    PyObject *tag_names = PyTuple_New(TAG_COUNT);
    if (!tag_names) return NULL;
    for (int i = 0; i < TAG_COUNT; i++) {
        PyObject *t = PyUnicode_InternFromString(TAG_NAMES[i]);
        if (!t) return NULL;
        PyTuple_SET_ITEM(tag_names, i, t);
    }
    if (PyModule_AddObject(m, "TAG_NAMES", tag_names) < 0) return NULL;
    if (PyModule_AddObject(m, "IdBuf", (PyObject *)&IdBufType) < 0 ||
        PyModule_AddObject(m, "StrBuf", (PyObject *)&StrBufType) < 0 ||
        PyModule_AddObject(m, "Cols", (PyObject *)&ColsType) < 0)
        return NULL;
    return m;
}
