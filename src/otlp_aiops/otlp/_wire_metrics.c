/*
 * _wire_metrics: decode OTLP metric data points (gauge/sum number points, histograms, exponential
 * histograms, summaries, and their exemplars) straight from protobuf wire bytes into the row tuples
 * and flat attribute lists of otlp_aiops.otlp.batches.MetricBatch.
 *
 * Why: the pure-Python path parses each ResourceMetrics with upb and then reads every field of every
 * point from Python; nearly all of a point's cost is in those reads. This module reads the bytes
 * once and builds only the objects the batch keeps.
 *
 * Contract (see decode_proto._MetricsFast): decode_block() takes one serialised ResourceMetrics and
 * either decodes all of it (returns the record index after its last point) or, at the first thing
 * that is not the plain common case, undoes what it appended and returns None, and the caller runs
 * the pure-Python decoder on the block. "Not the common case" is everything the Python decoder
 * reports or treats specially: malformed bytes, invalid UTF-8, a metric without data, a data field
 * given twice (merging), an unknown aggregation temporality, a bad histogram shape, a timestamp
 * beyond int64, an exemplar id of the wrong length, a repeated singular message field. So every
 * quarantine entry, and every block the upb parser would reject, comes from the reference decoder
 * itself; this module only has to agree with it on clean blocks. Unknown fields are counted here
 * (into a list of "Message.#field" names the caller adds once the block is decoded).
 *
 * series_id and the metric table entry are memoised per batch in two dicts keyed by bytes: the
 * metric's identifying fields, and those plus the context index and the point's raw attribute
 * bytes (the same bytes always render to the same attributes, so they give the same series_id).
 * On a miss, Python computes the value (series_fn / metric_fn), so the hash is the one in batches.py.
 *
 * The reading, UTF-8, AnyValue and key-cache helpers are in _wire_pb.h, shared with _wire.c (the
 * span and log decoder); each extension compiles its own static copy, so they load independently.
 */
#include "_wire_pb.h" /* Python.h, stdint.h, string.h, math.h */

/* ---------------------------------------------------------------------------------------------- */
/* attributes */

typedef struct {
    PyObject *keys, *vals, *tag_pos, *tags; /* borrowed lists of an AttrCols */
    PyObject *kidx;                         /* its key index: dict key -> position in the key table */
} Attrs;

/* keys.append(kidx.setdefault(k, len(kidx))) */
static int append_key(Attrs *a, PyObject *k) {
    PyObject *i = key_index(a->kidx, k);
    if (!i) return -2;
    return PyList_Append(a->keys, i) < 0 ? -2 : 0;
}

/* Append one KeyValue to the attribute lists. */
static int decode_kv(Ctx *c, Attrs *a, const uint8_t *p, Py_ssize_t n) {
    const uint8_t *kp, *vp;
    Py_ssize_t kn, vn;
    PyObject *merged;
    int rc = kv_read(c, p, n, &kp, &kn, &vp, &vn, &merged);
    if (rc < 0) return rc;
    PyObject *k, *tag, *text;
    if ((rc = kv_render(c, kp, kn, vp, vn, merged, &k, &tag, &text)) < 0) return rc;
    if (tag != S_string) {
        PyObject *pos = PyLong_FromSsize_t(PyList_GET_SIZE(a->keys));
        if (!pos || PyList_Append(a->tag_pos, pos) < 0 || PyList_Append(a->tags, tag) < 0) {
            Py_XDECREF(pos);
            Py_DECREF(k);
            Py_DECREF(tag);
            Py_DECREF(text);
            return -2;
        }
        Py_DECREF(pos);
    }
    rc = (append_key(a, k) < 0 || PyList_Append(a->vals, text) < 0) ? -2 : 0;
    Py_DECREF(k);
    Py_DECREF(tag);
    Py_DECREF(text);
    return rc;
}

static int get_attrs(PyObject *t, Attrs *a) {
    if (attr_parts(t, &a->keys, &a->vals, &a->tag_pos, &a->tags, &a->kidx) < 0) return -1;
    if (!PyList_Check(a->keys) || !PyList_Check(a->vals) || !PyList_Check(a->tag_pos) || !PyList_Check(a->tags) ||
        !PyDict_Check(a->kidx)) {
        PyErr_SetString(PyExc_TypeError, "attribute lists must be lists, and the key index a dict");
        return -1;
    }
    return 0;
}

typedef struct {
    Py_ssize_t keys, vals, tag_pos, tags;
} AttrsMark;

static void attrs_mark(Attrs *a, AttrsMark *m) {
    m->keys = PyList_GET_SIZE(a->keys);
    m->vals = PyList_GET_SIZE(a->vals);
    m->tag_pos = PyList_GET_SIZE(a->tag_pos);
    m->tags = PyList_GET_SIZE(a->tags);
}

static int attrs_rollback(Attrs *a, AttrsMark *m) {
    if (truncate_list(a->keys, m->keys) < 0 || truncate_list(a->vals, m->vals) < 0 ||
        truncate_list(a->tag_pos, m->tag_pos) < 0 || truncate_list(a->tags, m->tags) < 0)
        return -2;
    return 0;
}

static PyObject *size_obj(PyObject *list) { return PyLong_FromSsize_t(PyList_GET_SIZE(list)); }

/* ---------------------------------------------------------------------------------------------- */
/* scratch buffers */

typedef struct {
    uint8_t *p;
    Py_ssize_t n, cap;
} Buf;

static int buf_put(Buf *b, const void *p, Py_ssize_t n) {
    if (grow((void **)&b->p, &b->cap, b->n + n, 1, 256) < 0) return -2;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* a length-prefixed piece, so that concatenated pieces cannot be confused */
static int buf_piece(Buf *b, const void *p, Py_ssize_t n) {
    uint64_t len = (uint64_t)n;
    if (buf_put(b, &len, 8) < 0) return -2;
    return n ? buf_put(b, p, n) : 0;
}

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
} Slice;

typedef struct {
    Slice *v;
    Py_ssize_t n, cap;
} Slices;

static int slices_put(Slices *s, const uint8_t *p, Py_ssize_t n) {
    if (s->n == s->cap && grow((void **)&s->v, &s->cap, s->n + 1, sizeof(Slice), 16) < 0) return -2;
    s->v[s->n++] = (Slice){p, n};
    return 0;
}

/* 64-bit values: bucket counts, or doubles as their bits */
typedef struct {
    uint64_t *v;
    Py_ssize_t n, cap;
} U64s;

static int u64_put(U64s *s, uint64_t x) {
    if (s->n == s->cap && grow((void **)&s->v, &s->cap, s->n + 1, sizeof(uint64_t), 64) < 0) return -2;
    s->v[s->n++] = x;
    return 0;
}

static double as_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static PyObject *u64_list(U64s *s, int doubles) {
    PyObject *l = PyList_New(s->n);
    if (!l) return NULL;
    for (Py_ssize_t i = 0; i < s->n; i++) {
        PyObject *x = doubles ? PyFloat_FromDouble(as_double(s->v[i])) : PyLong_FromUnsignedLongLong(s->v[i]);
        if (!x) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, x);
    }
    return l;
}

/* A repeated uint64 field (fixed64: a fixed64/double one): one value (wire type 0, or 1 if fixed64)
 * or packed (2). -1: malformed. */
static int rd_rep(Rd *r, int wt, U64s *out, int fixed64) {
    uint64_t v;
    if (wt != 2) {
        if ((fixed64 ? rd_fixed64(r, &v) : rd_varint(r, &v)) < 0) return -1;
        return u64_put(out, v);
    }
    const uint8_t *s;
    Py_ssize_t n;
    if (rd_bytes(r, &s, &n) < 0 || (fixed64 && n % 8)) return -1;
    Rd q = {s, s + n};
    while (q.p < q.end) {
        if ((fixed64 ? rd_fixed64(&q, &v) : rd_varint(&q, &v)) < 0) return -1;
        if (u64_put(out, v) < 0) return -2;
    }
    return 0;
}

static int32_t zigzag32(uint64_t v) {
    uint32_t u = (uint32_t)v;
    return (int32_t)((u >> 1) ^ (0u - (u & 1)));
}

static PyObject *opt_float(int has, uint64_t bits) {
    if (!has) {
        Py_INCREF(Py_None);
        return Py_None;
    }
    return PyFloat_FromDouble(as_double(bits));
}

/* ---------------------------------------------------------------------------------------------- */
/* metrics */

enum { T_NUMBER, T_HIST, T_EXP, T_SUMMARY, T_COUNT };

#define PUNT -1 /* not the common case: the caller decodes the block in Python */

static PyObject *S_short[T_COUNT], *S_mtype[5];

typedef struct {
    Ctx c;
    PyObject *fixed[T_COUNT];     /* bytearray: the nine shared columns, int64, 72 bytes a row */
    PyObject *shape[T_COUNT];     /* tuple of lists: the shape columns */
    Attrs attrs[T_COUNT];
    PyObject *exemplars;
    Attrs ex_attrs;
    PyObject *info_memo, *sid_memo;
    PyObject *res_fn, *scope_fn, *metric_fn, *series_fn;
    long long rec;
    /* the current scope's context: index (object and value), resource id and service name */
    PyObject *ci, *rid, *svc;
    long ci_val;
    /* the current metric */
    PyObject *ii, *name;
    long ii_val;
    const uint8_t *name_p;
    Py_ssize_t name_n;
    Buf ikey, skey;
    Slices exs, md;
    U64s u1, u2;
} M;

/* The metric name as a str (exemplar rows carry it), made once per metric. */
static PyObject *metric_name(M *m) {
    if (!m->name) {
        m->name = PyUnicode_DecodeUTF8((const char *)m->name_p, m->name_n, NULL);
    }
    return m->name;
}

/* One exemplar of a point: its row. */
static int decode_exemplar(M *m, int table, PyObject *sid, Py_ssize_t j, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t time = 0, val = 0;
    int which = 0, rc;
    const uint8_t *tp = NULL, *sp = NULL;
    Py_ssize_t tn = 0, sn_ = 0;
    while (r.p < r.end) {
        uint64_t key;
        if (rd_tag(&r, &key) < 0) return PUNT;
        int f = (int)(key >> 3), wt = (int)(key & 7);
        const uint8_t *s;
        Py_ssize_t sn;
        if (f == 7 && wt == 2) {
            if (rd_bytes(&r, &s, &sn) < 0) return PUNT;
            if ((rc = decode_kv(&m->c, &m->ex_attrs, s, sn)) < 0) return rc;
        } else if (f == 2 && wt == 1) {
            if (rd_fixed64(&r, &time) < 0) return PUNT;
        } else if ((f == 3 || f == 6) && wt == 1) {
            if (rd_fixed64(&r, &val) < 0) return PUNT;
            which = f;
        } else if (f == 4 && wt == 2) {
            if (rd_bytes(&r, &sp, &sn_) < 0) return PUNT;
        } else if (f == 5 && wt == 2) {
            if (rd_bytes(&r, &tp, &tn) < 0) return PUNT;
        } else {
            if (skip_field(&r, f, wt) < 0) return PUNT;
            if ((rc = count_unknown(&m->c, "Exemplar", (uint64_t)f)) < 0) return rc;
        }
    }
    if (time > INT64_MAX_U) return PUNT;
    PyObject *tid = NULL, *spid = NULL, *name = metric_name(m);
    if (!name) return -2;
    if ((rc = id_bytes(&m->c, tp, tn, 16, "trace_id", &tid)) < 0) return rc;
    if ((rc = id_bytes(&m->c, sp, sn_, 8, "span_id", &spid)) < 0) {
        Py_DECREF(tid);
        return rc;
    }
    PyObject *vd, *vi;
    if (which == 6) {
        int64_t iv = (int64_t)val;
        vd = PyFloat_FromDouble((double)iv);
        vi = PyLong_FromLongLong(iv);
    } else if (which == 3) {
        vd = PyFloat_FromDouble(as_double(val));
        vi = Py_None;
        Py_INCREF(vi);
    } else {
        vd = Py_None;
        vi = Py_None;
        Py_INCREF(vd);
        Py_INCREF(vi);
    }
    PyObject *t = PyTuple_New(13);
    if (!t) {
        Py_XDECREF(vd);
        Py_XDECREF(vi);
        Py_DECREF(tid);
        Py_DECREF(spid);
        return -2;
    }
    Py_INCREF(S_short[table]);
    PyTuple_SET_ITEM(t, 0, S_short[table]);
    Py_INCREF(sid);
    PyTuple_SET_ITEM(t, 1, sid);
    Py_INCREF(name);
    PyTuple_SET_ITEM(t, 2, name);
    PyTuple_SET_ITEM(t, 3, PyLong_FromSsize_t(j));
    PyTuple_SET_ITEM(t, 4, PyLong_FromUnsignedLongLong(time));
    PyTuple_SET_ITEM(t, 5, vd);
    PyTuple_SET_ITEM(t, 6, vi);
    PyTuple_SET_ITEM(t, 7, tid);
    PyTuple_SET_ITEM(t, 8, spid);
    PyTuple_SET_ITEM(t, 9, size_obj(m->ex_attrs.keys));
    Py_INCREF(m->rid);
    PyTuple_SET_ITEM(t, 10, m->rid);
    Py_INCREF(m->svc);
    PyTuple_SET_ITEM(t, 11, m->svc);
    PyTuple_SET_ITEM(t, 12, PyLong_FromLongLong(m->rec));
    for (int i = 0; i < 13; i++) {
        if (!PyTuple_GET_ITEM(t, i)) {
            Py_DECREF(t);
            return -2;
        }
    }
    rc = PyList_Append(m->exemplars, t);
    Py_DECREF(t);
    return rc < 0 ? -2 : 0;
}

/* Start a point: *a0 is where its attributes begin in the table's lists, the repeated-value lists
 * are emptied, and its series key begins with the table, the context and the metric's identity; the
 * raw bytes of each attribute are added as they are read. */
static int point_begin(M *m, int table, Py_ssize_t *a0) {
    *a0 = PyList_GET_SIZE(m->attrs[table].keys);
    m->u1.n = m->u2.n = 0;
    m->skey.n = 0;
    m->exs.n = 0;
    uint8_t t = (uint8_t)table;
    int64_t ci = m->ci_val;
    if (buf_put(&m->skey, &t, 1) < 0 || buf_put(&m->skey, &ci, 8) < 0) return -2;
    return buf_put(&m->skey, m->ikey.p, m->ikey.n);
}

static int point_attr(M *m, int table, const uint8_t *s, Py_ssize_t sn) {
    if (buf_piece(&m->skey, s, sn) < 0) return -2;
    return decode_kv(&m->c, &m->attrs[table], s, sn);
}

/* Finish a point: its series_id (memoised), its exemplars, and its row (9 shared columns, then
 * the shape columns, whose references it takes). */
static int point_end(M *m, int table, Py_ssize_t a0, uint64_t start, uint64_t time, uint32_t flags,
                     PyObject **shape, int nshape) {
    int rc = -2;
    PyObject *sid = NULL;
    for (int i = 0; i < nshape; i++)
        if (!shape[i]) goto out;
    if (start > INT64_MAX_U || time > INT64_MAX_U) {
        rc = PUNT;
        goto out;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)m->skey.p, m->skey.n);
    if (!key) goto out;
    sid = PyDict_GetItemWithError(m->sid_memo, key);
    if (sid) {
        Py_INCREF(sid);
    } else if (!PyErr_Occurred()) {
        sid = PyObject_CallFunction(m->series_fn, "inOO", table, a0, m->ci, m->ii);
        if (sid && PyDict_SetItem(m->sid_memo, key, sid) < 0) Py_CLEAR(sid);
    }
    Py_DECREF(key);
    if (!sid) goto out;
    for (Py_ssize_t j = 0; j < m->exs.n; j++) {
        if ((rc = decode_exemplar(m, table, sid, j, m->exs.v[j].p, m->exs.v[j].n)) < 0) goto out;
    }
    rc = -2;
    int64_t row[9];
    row[0] = m->ii_val;
    row[1] = PyLong_AsLongLong(sid);
    if (row[1] == -1 && PyErr_Occurred()) goto out;
    row[2] = (int64_t)start;
    row[3] = (int64_t)time;
    row[4] = (int64_t)PyList_GET_SIZE(m->attrs[table].keys);
    row[5] = (int64_t)flags;
    row[6] = (int64_t)m->exs.n;
    row[7] = (int64_t)m->ci_val;
    row[8] = (int64_t)m->rec;
    PyObject *ba = m->fixed[table];
    Py_ssize_t size = PyByteArray_GET_SIZE(ba);
    if (PyByteArray_Resize(ba, size + (Py_ssize_t)sizeof row) < 0) goto out;
    memcpy(PyByteArray_AS_STRING(ba) + size, row, sizeof row);
    for (int i = 0; i < nshape; i++) /* (the lists all have the same length: checked at entry) */
        if (PyList_Append(PyTuple_GET_ITEM(m->shape[table], i), shape[i]) < 0) goto out;
    rc = 0;
out:
    for (int i = 0; i < nshape; i++) Py_XDECREF(shape[i]);
    Py_XDECREF(sid);
    if (rc == 0) m->rec++;
    return rc;
}

/* The field-reading boilerplate of the point decoders: `bad` on malformed bytes; a known field
 * number with another wire type is an unknown field, as in upb. */
#define EXPECT(w) \
    if (wt != (w)) goto unknown
#define READ(call) \
    if ((call) < 0) return PUNT

/* A point decoder's loop over its fields (reader r, int rc): (f, wt) is a field's number and wire
 * type, s/sn a length-delimited value. The cases between POINT_FIELDS and POINT_FIELDS_END read the
 * known fields; any other field, or a known one with another wire type (`goto unknown`), is skipped
 * and counted as an unknown field of message msg. */
#define POINT_FIELDS                  \
    while (r.p < r.end) {             \
        int f, wt;                    \
        READ(rd_field(&r, &f, &wt));  \
        const uint8_t *s;             \
        Py_ssize_t sn;                \
        switch (f) {
#define POINT_FIELDS_END(msg)                                                 \
        default:                                                              \
        unknown:                                                              \
            READ(skip_field(&r, f, wt));                                      \
            if ((rc = count_unknown(&m->c, msg, (uint64_t)f)) < 0) return rc; \
        }                                                                     \
    }
/* The fields every point has: its attributes (one KeyValue each), exemplars, fixed64 and varint scalars. */
#define FIELD_ATTR(num, table)                                              \
    case num:                                                               \
        EXPECT(2);                                                          \
        READ(rd_bytes(&r, &s, &sn));                                        \
        if ((rc = point_attr(m, table, s, sn)) < 0) return rc;              \
        break
#define FIELD_EXEMPLAR(num)                                                 \
    case num:                                                               \
        EXPECT(2);                                                          \
        READ(rd_bytes(&r, &s, &sn));                                        \
        if (slices_put(&m->exs, s, sn) < 0) return -2;                      \
        break
#define FIELD_FIXED64(num, var) \
    case num: EXPECT(1); READ(rd_fixed64(&r, &(var))); break
#define FIELD_VARINT(num, var) \
    case num: EXPECT(0); READ(rd_varint(&r, &(var))); break

static int decode_number(M *m, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t start = 0, time = 0, val = 0, flags = 0;
    int which = 0, rc;
    Py_ssize_t a0;
    if (point_begin(m, T_NUMBER, &a0) < 0) return -2;
    POINT_FIELDS
        FIELD_ATTR(7, T_NUMBER);
        FIELD_FIXED64(2, start);
        FIELD_FIXED64(3, time);
        case 4:
        case 6: EXPECT(1); READ(rd_fixed64(&r, &val)); which = f; break;
        FIELD_EXEMPLAR(5);
        FIELD_VARINT(8, flags);
    POINT_FIELDS_END("NumberDataPoint")
    PyObject *shape[2];
    if (which == 6) {
        int64_t iv = (int64_t)val;
        shape[0] = PyFloat_FromDouble((double)iv);
        shape[1] = PyLong_FromLongLong(iv);
    } else {
        shape[0] = which == 4 ? PyFloat_FromDouble(as_double(val)) : (Py_INCREF(Py_None), Py_None);
        shape[1] = Py_None;
        Py_INCREF(Py_None);
    }
    return point_end(m, T_NUMBER, a0, start, time, (uint32_t)flags, shape, 2);
}

/* histogram_problem() of batches.py: nonzero when the point breaks the OTLP shape rules. */
static int histogram_bad(uint64_t count, U64s *counts, U64s *bounds) {
    if (counts->n == 0) return bounds->n != 0;
    if (counts->n != bounds->n + 1) return 1;
    uint64_t total = 0;
    for (Py_ssize_t i = 0; i < counts->n; i++) {
        if (total + counts->v[i] < total) return 1; /* beyond uint64: cannot equal count */
        total += counts->v[i];
    }
    if (total != count) return 1;
    for (Py_ssize_t i = 0; i < bounds->n; i++) {
        double b = as_double(bounds->v[i]);
        if (isnan(b)) return 1;
        if (i > 0 && !(b > as_double(bounds->v[i - 1]))) return 1;
    }
    return 0;
}

static int decode_histogram(M *m, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t start = 0, time = 0, count = 0, sum = 0, mn = 0, mx = 0, flags = 0;
    int has_sum = 0, has_min = 0, has_max = 0, rc;
    Py_ssize_t a0;
    if (point_begin(m, T_HIST, &a0) < 0) return -2;
    POINT_FIELDS
        FIELD_ATTR(9, T_HIST);
        FIELD_FIXED64(2, start);
        FIELD_FIXED64(3, time);
        FIELD_FIXED64(4, count);
        case 5: EXPECT(1); READ(rd_fixed64(&r, &sum)); has_sum = 1; break;
        case 6:
        case 7:
            if (wt != 1 && wt != 2) goto unknown;
            if ((rc = rd_rep(&r, wt, f == 6 ? &m->u1 : &m->u2, 1)) < 0) return rc;
            break;
        FIELD_EXEMPLAR(8);
        FIELD_VARINT(10, flags);
        case 11: EXPECT(1); READ(rd_fixed64(&r, &mn)); has_min = 1; break;
        case 12: EXPECT(1); READ(rd_fixed64(&r, &mx)); has_max = 1; break;
    POINT_FIELDS_END("HistogramDataPoint")
    if (histogram_bad(count, &m->u1, &m->u2)) return PUNT;
    PyObject *shape[6] = {PyLong_FromUnsignedLongLong(count), opt_float(has_sum, sum), opt_float(has_min, mn),
                          opt_float(has_max, mx), u64_list(&m->u1, 0), u64_list(&m->u2, 1)};
    return point_end(m, T_HIST, a0, start, time, (uint32_t)flags, shape, 6);
}

/* Buckets of an exponential histogram point. */
static int decode_buckets(M *m, const uint8_t *p, Py_ssize_t n, int32_t *offset, U64s *counts) {
    Rd r = {p, p + n};
    int rc;
    while (r.p < r.end) {
        uint64_t key, v;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 1 && wt == 0) {
            READ(rd_varint(&r, &v));
            *offset = zigzag32(v);
        } else if (f == 2 && (wt == 0 || wt == 2)) {
            if ((rc = rd_rep(&r, wt, counts, 0)) < 0) return rc;
        } else {
            READ(skip_field(&r, f, wt));
            if ((rc = count_unknown(&m->c, "Buckets", (uint64_t)f)) < 0) return rc;
        }
    }
    return 0;
}

static int decode_exp(M *m, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t start = 0, time = 0, count = 0, sum = 0, mn = 0, mx = 0, flags = 0, scale = 0, zc = 0, zt = 0;
    int has_sum = 0, has_min = 0, has_max = 0, rc;
    const uint8_t *pos = NULL, *neg = NULL;
    Py_ssize_t posn = 0, negn = 0;
    int npos = 0, nneg = 0;
    Py_ssize_t a0;
    if (point_begin(m, T_EXP, &a0) < 0) return -2;
    POINT_FIELDS
        FIELD_ATTR(1, T_EXP);
        FIELD_FIXED64(2, start);
        FIELD_FIXED64(3, time);
        FIELD_FIXED64(4, count);
        case 5: EXPECT(1); READ(rd_fixed64(&r, &sum)); has_sum = 1; break;
        FIELD_VARINT(6, scale);
        FIELD_FIXED64(7, zc);
        case 8: EXPECT(2); READ(rd_bytes(&r, &pos, &posn)); npos++; break;
        case 9: EXPECT(2); READ(rd_bytes(&r, &neg, &negn)); nneg++; break;
        FIELD_VARINT(10, flags);
        FIELD_EXEMPLAR(11);
        case 12: EXPECT(1); READ(rd_fixed64(&r, &mn)); has_min = 1; break;
        case 13: EXPECT(1); READ(rd_fixed64(&r, &mx)); has_max = 1; break;
        FIELD_FIXED64(14, zt);
    POINT_FIELDS_END("ExponentialHistogramDataPoint")
    if (npos > 1 || nneg > 1) return PUNT; /* occurrences merge: left to upb */
    int32_t poff = 0, noff = 0;
    if (npos && (rc = decode_buckets(m, pos, posn, &poff, &m->u1)) < 0) return rc;
    if (nneg && (rc = decode_buckets(m, neg, negn, &noff, &m->u2)) < 0) return rc;
    PyObject *shape[11] = {
        PyLong_FromUnsignedLongLong(count), opt_float(has_sum, sum), opt_float(has_min, mn), opt_float(has_max, mx),
        PyLong_FromLong(zigzag32(scale)),   PyLong_FromUnsignedLongLong(zc), PyFloat_FromDouble(as_double(zt)),
        PyLong_FromLong(poff),              u64_list(&m->u1, 0),             PyLong_FromLong(noff),
        u64_list(&m->u2, 0),
    };
    return point_end(m, T_EXP, a0, start, time, (uint32_t)flags, shape, 11);
}

static int decode_summary(M *m, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    uint64_t start = 0, time = 0, count = 0, sum = 0, flags = 0;
    int rc;
    Py_ssize_t a0;
    if (point_begin(m, T_SUMMARY, &a0) < 0) return -2;
    POINT_FIELDS
        FIELD_ATTR(7, T_SUMMARY);
        FIELD_FIXED64(2, start);
        FIELD_FIXED64(3, time);
        FIELD_FIXED64(4, count);
        FIELD_FIXED64(5, sum);
        case 6: {
            EXPECT(2);
            READ(rd_bytes(&r, &s, &sn));
            Rd q = {s, s + sn};
            uint64_t qv = 0, vv = 0;
            while (q.p < q.end) {
                uint64_t k2;
                READ(rd_tag(&q, &k2));
                int f2 = (int)(k2 >> 3), w2 = (int)(k2 & 7);
                if (f2 == 1 && w2 == 1) {
                    READ(rd_fixed64(&q, &qv));
                } else if (f2 == 2 && w2 == 1) {
                    READ(rd_fixed64(&q, &vv));
                } else {
                    READ(skip_field(&q, f2, w2));
                    if ((rc = count_unknown(&m->c, "ValueAtQuantile", (uint64_t)f2)) < 0) return rc;
                }
            }
            if (u64_put(&m->u1, qv) < 0 || u64_put(&m->u2, vv) < 0) return -2;
            break;
        }
        FIELD_VARINT(8, flags);
    POINT_FIELDS_END("SummaryDataPoint")
    PyObject *shape[4] = {PyLong_FromUnsignedLongLong(count), PyFloat_FromDouble(as_double(sum)),
                          u64_list(&m->u1, 1), u64_list(&m->u2, 1)};
    return point_end(m, T_SUMMARY, a0, start, time, (uint32_t)flags, shape, 4);
}

/* Metric.data: field number -> (type name, point table, message name) */
static int data_kind(int f) {
    switch (f) {
    case 5: return 0;  /* gauge */
    case 7: return 1;  /* sum */
    case 9: return 2;  /* histogram */
    case 10: return 3; /* exponential_histogram */
    case 11: return 4; /* summary */
    }
    return -1;
}
static const int KIND_TABLE[5] = {T_NUMBER, T_NUMBER, T_HIST, T_EXP, T_SUMMARY};
static const char *KIND_MSG[5] = {"Gauge", "Sum", "Histogram", "ExponentialHistogram", "Summary"};

static int decode_metric(M *m, const uint8_t *p, Py_ssize_t n) {
    Rd r = {p, p + n};
    const uint8_t *np = NULL, *dp = NULL, *up = NULL, *data = NULL;
    Py_ssize_t nn = 0, dn = 0, un = 0, datan = 0;
    int kind = -1, ndata = 0, rc;
    m->md.n = 0;
    while (r.p < r.end) {
        int f, wt;
        READ(rd_field(&r, &f, &wt));
        const uint8_t *s;
        Py_ssize_t sn;
        if (f == 1 && wt == 2) {
            READ(rd_str(&r, &np, &nn));
        } else if (f == 2 && wt == 2) {
            READ(rd_str(&r, &dp, &dn));
        } else if (f == 3 && wt == 2) {
            READ(rd_str(&r, &up, &un));
        } else if (data_kind(f) >= 0 && wt == 2) {
            READ(rd_bytes(&r, &data, &datan));
            kind = data_kind(f);
            ndata++;
        } else if (f == 12 && wt == 2) {
            READ(rd_bytes(&r, &s, &sn));
            if (slices_put(&m->md, s, sn) < 0) return -2;
        } else {
            READ(skip_field(&r, f, wt));
            if ((rc = count_unknown(&m->c, "Metric", (uint64_t)f)) < 0) return rc;
        }
    }
    if (ndata != 1) return PUNT; /* no data (set aside), or data fields that merge or replace */
    if (!utf8_valid(np ? np : (const uint8_t *)"", nn) || !utf8_valid(dp ? dp : (const uint8_t *)"", dn) ||
        !utf8_valid(up ? up : (const uint8_t *)"", un))
        return PUNT;
    /* the data message: count its points, read temporality and monotonicity */
    Rd d = {data, data + datan};
    uint64_t temporality = 0, monotonic = 0;
    Py_ssize_t npoints = 0;
    while (d.p < d.end) {
        int f, wt;
        READ(rd_field(&d, &f, &wt));
        const uint8_t *s;
        Py_ssize_t sn;
        if (f == 1 && wt == 2) {
            READ(rd_bytes(&d, &s, &sn));
            npoints++;
        } else if (f == 2 && wt == 0 && kind >= 1 && kind <= 3) {
            READ(rd_varint(&d, &temporality));
        } else if (f == 3 && wt == 0 && kind == 1) {
            READ(rd_varint(&d, &monotonic));
        } else {
            READ(skip_field(&d, f, wt));
            if ((rc = count_unknown(&m->c, KIND_MSG[kind], (uint64_t)f)) < 0) return rc;
        }
    }
    int32_t temp32 = (int32_t)temporality;
    int has_temp = kind >= 1 && kind <= 3;
    if (has_temp && (temp32 < 0 || temp32 > 2)) return PUNT;
    if (npoints == 0) /* nothing to write (the Python decoder's table entry is unused) */
        return m->md.n ? PUNT : 0; /* but its metadata is parsed (and may be broken): left to Python */
    /* the metric's identity: the info memo's key, and the start of each point's series key */
    m->ikey.n = 0;
    uint8_t tail[6] = {(uint8_t)kind, (uint8_t)(temp32 & 0xFF), 0, 0, 0, (uint8_t)(monotonic != 0)};
    if (buf_piece(&m->ikey, np, nn) < 0 || buf_piece(&m->ikey, dp, dn) < 0 || buf_piece(&m->ikey, up, un) < 0 ||
        buf_put(&m->ikey, tail, 6) < 0)
        return -2;
    m->name_p = np ? np : (const uint8_t *)"";
    m->name_n = nn;
    Py_CLEAR(m->name);
    Py_CLEAR(m->ii);
    PyObject *ikey = NULL;
    if (m->md.n == 0) {
        ikey = PyBytes_FromStringAndSize((const char *)m->ikey.p, m->ikey.n);
        if (!ikey) return -2;
        m->ii = PyDict_GetItemWithError(m->info_memo, ikey);
        if (m->ii) {
            Py_INCREF(m->ii);
        } else if (PyErr_Occurred()) {
            Py_DECREF(ikey);
            return -2;
        }
    }
    if (!m->ii) {
        PyObject *name = metric_name(m), *desc = NULL, *unit = NULL, *md = NULL;
        rc = -2;
        if (!name) goto info_out;
        desc = dn ? PyUnicode_DecodeUTF8((const char *)dp, dn, NULL) : (Py_INCREF(Py_None), Py_None);
        unit = un ? PyUnicode_DecodeUTF8((const char *)up, un, NULL) : (Py_INCREF(Py_None), Py_None);
        md = PyList_New(m->md.n);
        if (!desc || !unit || !md) goto info_out;
        for (Py_ssize_t i = 0; i < m->md.n; i++) {
            PyObject *b = PyBytes_FromStringAndSize((const char *)m->md.v[i].p, m->md.v[i].n);
            if (!b) goto info_out;
            PyList_SET_ITEM(md, i, b);
        }
        PyObject *temp_obj = has_temp ? PyLong_FromLong(temp32) : (Py_INCREF(Py_None), Py_None);
        PyObject *mono_obj = kind == 1 ? PyBool_FromLong(monotonic != 0) : (Py_INCREF(Py_None), Py_None);
        if (temp_obj && mono_obj)
            m->ii = PyObject_CallFunction(m->metric_fn, "OOOOOOO", name, desc, unit, S_mtype[kind], temp_obj,
                                          mono_obj, md);
        Py_XDECREF(temp_obj);
        Py_XDECREF(mono_obj);
        if (!m->ii) goto info_out;
        if (m->ii == Py_None) {
            Py_CLEAR(m->ii);
            rc = PUNT;
            goto info_out;
        }
        rc = ikey && PyDict_SetItem(m->info_memo, ikey, m->ii) < 0 ? -2 : 0;
    info_out:
        Py_XDECREF(desc);
        Py_XDECREF(unit);
        Py_XDECREF(md);
        if (rc < 0) {
            Py_XDECREF(ikey);
            return rc;
        }
    }
    Py_XDECREF(ikey);
    m->ii_val = PyLong_AsLong(m->ii);
    if (m->ii_val == -1 && PyErr_Occurred()) return -2;
    /* the points */
    int table = KIND_TABLE[kind];
    d = (Rd){data, data + datan};
    while (d.p < d.end) {
        int f, wt;
        READ(rd_field(&d, &f, &wt));
        const uint8_t *s;
        Py_ssize_t sn;
        if (f == 1 && wt == 2) {
            READ(rd_bytes(&d, &s, &sn));
            switch (table) {
            case T_NUMBER: rc = decode_number(m, s, sn); break;
            case T_HIST: rc = decode_histogram(m, s, sn); break;
            case T_EXP: rc = decode_exp(m, s, sn); break;
            default: rc = decode_summary(m, s, sn);
            }
            if (rc < 0) return rc;
        } else {
            READ(skip_field(&d, f, wt));
        }
    }
    return 0;
}

/* The fields 1 (must be at most once: occurrences merge) and 3 of a Resource/ScopeMetrics, and its
 * unknown fields (counted). */
static int container_header(M *m, const uint8_t *p, Py_ssize_t n, const char *name, PyObject **f1, PyObject **f3) {
    Rd r = {p, p + n};
    const uint8_t *a1 = NULL, *a3 = NULL;
    Py_ssize_t n1 = 0, n3 = 0;
    int count1 = 0, rc;
    while (r.p < r.end) {
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 1 && wt == 2) {
            READ(rd_bytes(&r, &a1, &n1));
            count1++;
        } else if (f == 3 && wt == 2) {
            READ(rd_str(&r, &a3, &n3));
        } else if (f == 2 && wt == 2) {
            READ(rd_bytes(&r, &s, &sn));
        } else {
            READ(skip_field(&r, f, wt));
            if ((rc = count_unknown(&m->c, name, (uint64_t)f)) < 0) return rc;
        }
    }
    if (count1 > 1) return PUNT;
    *f1 = PyBytes_FromStringAndSize(a1 ? (const char *)a1 : "", n1);
    *f3 = PyBytes_FromStringAndSize(a3 ? (const char *)a3 : "", n3);
    if (!*f1 || !*f3) {
        Py_XDECREF(*f1);
        Py_XDECREF(*f3);
        return -2;
    }
    return 0;
}

static int decode_scope(M *m, PyObject *rinfo, const uint8_t *p, Py_ssize_t n) {
    PyObject *scope, *surl;
    int rc = container_header(m, p, n, "ScopeMetrics", &scope, &surl);
    if (rc < 0) return rc;
    PyObject *ctx = PyObject_CallFunctionObjArgs(m->scope_fn, rinfo, scope, surl, NULL);
    Py_DECREF(scope);
    Py_DECREF(surl);
    if (!ctx) return -2;
    if (ctx == Py_None) {
        Py_DECREF(ctx);
        return PUNT;
    }
    if (!PyTuple_Check(ctx) || PyTuple_GET_SIZE(ctx) != 3) {
        Py_DECREF(ctx);
        PyErr_SetString(PyExc_TypeError, "scope_fn must return (context index, resource_id, service_name)");
        return -2;
    }
    Py_XSETREF(m->ci, PyTuple_GET_ITEM(ctx, 0));
    Py_INCREF(m->ci);
    Py_XSETREF(m->rid, PyTuple_GET_ITEM(ctx, 1));
    Py_INCREF(m->rid);
    Py_XSETREF(m->svc, PyTuple_GET_ITEM(ctx, 2));
    Py_INCREF(m->svc);
    Py_DECREF(ctx);
    m->ci_val = PyLong_AsLong(m->ci);
    if (m->ci_val == -1 && PyErr_Occurred()) return -2;
    Rd r = {p, p + n};
    while (r.p < r.end) {
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        READ(rd_tag(&r, &key));
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 2 && wt == 2) {
            READ(rd_bytes(&r, &s, &sn));
            if ((rc = decode_metric(m, s, sn)) < 0) return rc;
        } else {
            READ(skip_field(&r, f, wt));
        }
    }
    return 0;
}

static int decode_resource(M *m, const uint8_t *p, Py_ssize_t n) {
    PyObject *res, *url;
    int rc = container_header(m, p, n, "ResourceMetrics", &res, &url);
    if (rc < 0) return rc;
    PyObject *rinfo = PyObject_CallFunctionObjArgs(m->res_fn, res, url, NULL);
    Py_DECREF(res);
    Py_DECREF(url);
    if (!rinfo) return -2;
    if (rinfo == Py_None) {
        Py_DECREF(rinfo);
        return PUNT;
    }
    Rd r = {p, p + n};
    rc = 0;
    while (r.p < r.end && rc == 0) {
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        if (rd_tag(&r, &key) < 0) {
            rc = PUNT;
            break;
        }
        int f = (int)(key >> 3), wt = (int)(key & 7);
        if (f == 2 && wt == 2) {
            if (rd_bytes(&r, &s, &sn) < 0) rc = PUNT;
            else rc = decode_scope(m, rinfo, s, sn);
        } else if (skip_field(&r, f, wt) < 0) {
            rc = PUNT;
        }
    }
    Py_DECREF(rinfo);
    return rc;
}

typedef struct {
    Py_ssize_t fixed[T_COUNT], points[T_COUNT], exemplars;
    AttrsMark a[T_COUNT], ea;
} MMark;

/* Set up the decoder state from the caller's state tuple (see decode_block's doc). */
static int m_init(M *m, PyObject *st, long long rec) {
    memset(m, 0, sizeof *m);
    if (PyTuple_GET_SIZE(st) != 12) {
        PyErr_SetString(PyExc_TypeError, "state must be a 12-tuple");
        return -1;
    }
    PyObject *pts = PyTuple_GET_ITEM(st, 0), *ats = PyTuple_GET_ITEM(st, 1);
    if (!PyTuple_Check(pts) || PyTuple_GET_SIZE(pts) != T_COUNT || !PyTuple_Check(ats) ||
        PyTuple_GET_SIZE(ats) != T_COUNT) {
        PyErr_SetString(PyExc_TypeError, "points and attrs must be 4-tuples");
        return -1;
    }
    static const Py_ssize_t NSHAPE[T_COUNT] = {2, 6, 11, 4};
    for (int i = 0; i < T_COUNT; i++) {
        PyObject *pr = PyTuple_GET_ITEM(pts, i);
        if (!PyTuple_Check(pr) || PyTuple_GET_SIZE(pr) != 2 || !PyByteArray_Check(PyTuple_GET_ITEM(pr, 0)) ||
            !PyTuple_Check(PyTuple_GET_ITEM(pr, 1)) || PyTuple_GET_SIZE(PyTuple_GET_ITEM(pr, 1)) != NSHAPE[i]) {
            PyErr_SetString(PyExc_TypeError, "point rows must be PointRows.lists(): (bytearray, shape lists)");
            return -1;
        }
        m->fixed[i] = PyTuple_GET_ITEM(pr, 0);
        m->shape[i] = PyTuple_GET_ITEM(pr, 1);
        Py_ssize_t rows = PyByteArray_GET_SIZE(m->fixed[i]) / 72;
        if (PyByteArray_GET_SIZE(m->fixed[i]) % 72) goto uneven;
        for (Py_ssize_t j = 0; j < NSHAPE[i]; j++) {
            PyObject *l = PyTuple_GET_ITEM(m->shape[i], j);
            if (!PyList_Check(l) || PyList_GET_SIZE(l) != rows) goto uneven;
        }
        if (get_attrs(PyTuple_GET_ITEM(ats, i), &m->attrs[i]) < 0) return -1;
    }
    m->exemplars = PyTuple_GET_ITEM(st, 2);
    if (!PyList_Check(m->exemplars) || get_attrs(PyTuple_GET_ITEM(st, 3), &m->ex_attrs) < 0) return -1;
    m->info_memo = PyTuple_GET_ITEM(st, 4);
    m->sid_memo = PyTuple_GET_ITEM(st, 5);
    m->res_fn = PyTuple_GET_ITEM(st, 6);
    m->scope_fn = PyTuple_GET_ITEM(st, 7);
    m->metric_fn = PyTuple_GET_ITEM(st, 8);
    m->series_fn = PyTuple_GET_ITEM(st, 9);
    m->c.fallback = PyTuple_GET_ITEM(st, 10);
    m->c.pending = PyTuple_GET_ITEM(st, 11);
    if (!PyDict_Check(m->info_memo) || !PyDict_Check(m->sid_memo) || !PyList_Check(m->c.pending) ||
        !PyCallable_Check(m->c.fallback)) {
        PyErr_SetString(PyExc_TypeError, "bad state");
        return -1;
    }
    m->rec = rec;
    return 0;
uneven:
    PyErr_SetString(PyExc_ValueError, "point rows: the packed columns and the shape lists differ in length");
    return -1;
}

static void m_free(M *m) {
    Py_XDECREF(m->c.err_msg);
    Py_XDECREF(m->ci);
    Py_XDECREF(m->rid);
    Py_XDECREF(m->svc);
    Py_XDECREF(m->ii);
    Py_XDECREF(m->name);
    PyMem_Free(m->ikey.p);
    PyMem_Free(m->skey.p);
    PyMem_Free(m->exs.v);
    PyMem_Free(m->md.v);
    PyMem_Free(m->u1.v);
    PyMem_Free(m->u2.v);
}

/* One ResourceMetrics block, all or nothing: 0 decoded; PUNT: nothing appended (the record index
 * is back where it was); -2: a Python error. */
static int block(M *m, const uint8_t *p, Py_ssize_t n) {
    MMark mark;
    long long rec0 = m->rec;
    for (int i = 0; i < T_COUNT; i++) {
        mark.fixed[i] = PyByteArray_GET_SIZE(m->fixed[i]);
        mark.points[i] = mark.fixed[i] / 72;
        attrs_mark(&m->attrs[i], &mark.a[i]);
    }
    mark.exemplars = PyList_GET_SIZE(m->exemplars);
    attrs_mark(&m->ex_attrs, &mark.ea);
    int rc = decode_resource(m, p, n);
    if (rc != PUNT) return rc;
    Py_CLEAR(m->c.err_msg);
    m->rec = rec0;
    for (int i = 0; i < T_COUNT; i++) {
        if (PyByteArray_Resize(m->fixed[i], mark.fixed[i]) < 0 || attrs_rollback(&m->attrs[i], &mark.a[i]) < 0)
            return -2;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(m->shape[i]); j++)
            if (truncate_list(PyTuple_GET_ITEM(m->shape[i], j), mark.points[i]) < 0) return -2;
    }
    if (truncate_list(m->exemplars, mark.exemplars) < 0 || attrs_rollback(&m->ex_attrs, &mark.ea) < 0) return -2;
    return PUNT;
}

PyDoc_STRVAR(decode_block_doc,
"decode_block(resource_metrics, first_record, state) -> int | None\n\n"
"Decode one serialised ResourceMetrics into a MetricBatch's lists. state is the tuple\n"
"(points, attrs, exemplars, exemplar_attrs, info_memo, sid_memo, res_fn, scope_fn, metric_fn,\n"
" series_fn, fallback, pending): points the four point-row lists (number, histogram, exponential\n"
"histogram, summary), attrs their four AttrCols.lists(), info_memo and sid_memo the batch's memo\n"
"dicts, res_fn(resource, schema_url) -> resource info or None, scope_fn(resource info, scope,\n"
"schema_url) -> (context index, resource_id, service_name) or None, metric_fn(name, description,\n"
"unit, type, temporality, monotonic, [metadata KeyValue bytes]) -> metric table index or None,\n"
"series_fn(table, attribute start, context index, metric index) -> series_id, fallback(bytes) ->\n"
"(tag, text, unknown field names) for composite AnyValues, pending a list that receives the names\n"
"of unknown fields. Returns the record index after the block's last point, or None when the block\n"
"is not the plain common case (nothing appended then; decode it with the Python decoder).");

static PyObject *decode_block(PyObject *self, PyObject *args) {
    Py_buffer buf;
    long long rec;
    PyObject *st, *result = NULL;
    if (!PyArg_ParseTuple(args, "y*LO!", &buf, &rec, &PyTuple_Type, &st)) return NULL;
    M m;
    if (m_init(&m, st, rec) == 0) {
        int rc = block(&m, buf.buf, buf.len);
        if (rc == PUNT) {
            Py_INCREF(Py_None);
            result = Py_None;
        } else if (rc == 0) {
            result = PyLong_FromLongLong(m.rec);
        }
    }
    m_free(&m);
    PyBuffer_Release(&buf);
    return result;
}

PyDoc_STRVAR(decode_request_doc,
"decode_request(message, first_record, state, unknown, python_block) -> int | None\n\n"
"Decode a whole MetricsData / ExportMetricsServiceRequest whose top level is nothing but\n"
"well-formed ResourceMetrics blocks (field 1); for any other message, return None at once\n"
"without touching anything (decode it block by block). Each block goes through decode_block;\n"
"the unknown fields of a decoded block are added to the dict `unknown`, and a block it hands\n"
"back is given to python_block(block_index, block_bytes, record_index), which decodes it and\n"
"returns the record index after it. state as for decode_block. Returns the record index after\n"
"the last record.");

static PyObject *decode_request(PyObject *self, PyObject *args) {
    Py_buffer buf;
    long long rec;
    PyObject *st, *unknown, *pyblock, *result = NULL;
    if (!PyArg_ParseTuple(args, "y*LO!O!O", &buf, &rec, &PyTuple_Type, &st, &PyDict_Type, &unknown, &pyblock))
        return NULL;
    const uint8_t *p0 = buf.buf, *end = p0 + buf.len;
    Rd r = {p0, end};
    while (r.p < r.end) { /* the top level: only well-formed field-1 blocks */
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        if (rd_tag(&r, &key) < 0 || key != ((1 << 3) | 2) || rd_bytes(&r, &s, &sn) < 0) {
            PyBuffer_Release(&buf);
            Py_RETURN_NONE;
        }
    }
    M m;
    if (m_init(&m, st, rec) < 0) goto done;
    m.c.unknown = unknown;
    r = (Rd){p0, end};
    Py_ssize_t ri = 0;
    while (r.p < r.end) {
        uint64_t key;
        const uint8_t *s;
        Py_ssize_t sn;
        rd_tag(&r, &key);
        rd_bytes(&r, &s, &sn);
        int rc = block(&m, s, sn);
        if (rc == -2) goto done;
        if (flush_unknown(&m.c, rc == 0) < 0) goto done;
        if (rc == PUNT) {
            PyObject *got = PyObject_CallFunction(pyblock, "ny#L", ri, (const char *)s, sn, m.rec);
            if (!got) goto done;
            m.rec = PyLong_AsLongLong(got);
            Py_DECREF(got);
            if (m.rec == -1 && PyErr_Occurred()) goto done;
        }
        ri++;
    }
    result = PyLong_FromLongLong(m.rec);
done:
    m_free(&m);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_block", decode_block, METH_VARARGS, decode_block_doc},
    {"decode_request", decode_request, METH_VARARGS, decode_request_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wire_metrics", "OTLP protobuf metric point decoding for ingest.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wire_metrics(void) {
    if (pb_init("_wire_metrics") < 0) return NULL;
    S_short[T_NUMBER] = PyUnicode_InternFromString("number");
    S_short[T_HIST] = PyUnicode_InternFromString("histogram");
    S_short[T_EXP] = PyUnicode_InternFromString("exponential_histogram");
    S_short[T_SUMMARY] = PyUnicode_InternFromString("summary");
    static const char *mtypes[5] = {"gauge", "sum", "histogram", "exponential_histogram", "summary"};
    for (int i = 0; i < 5; i++)
        if (!(S_mtype[i] = PyUnicode_InternFromString(mtypes[i]))) return NULL;
    if (!S_short[0] || !S_short[1] || !S_short[2] || !S_short[3]) return NULL;
    return PyModule_Create(&module);
}
