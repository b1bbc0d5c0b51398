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
 * decode_json_text() does the same for one OTLP/JSON ExportMetricsServiceRequest from its text (see
 * its section below): gauge, sum and histogram points in the strict common form, else nothing.
 *
 * The reading, UTF-8, AnyValue and key-cache helpers are in _wire_pb.h, the JSON text tokenizer in
 * _wire_json.h, both shared with _wire.c (the span and log decoder); each extension compiles its own
 * static copy, so they load independently.
 */
#include "_wire_json.h" /* _wire_pb.h (Python.h, stdint.h, string.h, math.h), the JSON text tokenizer */

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
    uint8_t key_flag;          /* or'ed into the table byte of series keys: 0x80 for keys from JSON text */
    const uint8_t *jexa, *jexe; /* from JSON text: the current point's exemplars array, or NULL */
} M;

/* The metric name as a str (exemplar rows carry it), made once per metric. */
static PyObject *metric_name(M *m) {
    if (!m->name) {
        m->name = PyUnicode_DecodeUTF8((const char *)m->name_p, m->name_n, NULL);
    }
    return m->name;
}

/* Append an exemplar row; it takes the references of vd, vi, tid and spid (which may be NULL after
 * a failed allocation: then -2). */
static int exemplar_row(M *m, int table, PyObject *sid, Py_ssize_t j, uint64_t time, PyObject *vd, PyObject *vi,
                        PyObject *tid, PyObject *spid) {
    PyObject *name = metric_name(m);
    PyObject *t = name ? PyTuple_New(13) : NULL;
    if (!t) {
        Py_XDECREF(vd);
        Py_XDECREF(vi);
        Py_XDECREF(tid);
        Py_XDECREF(spid);
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
    int rc = PyList_Append(m->exemplars, t);
    Py_DECREF(t);
    return rc < 0 ? -2 : 0;
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
    PyObject *tid = NULL, *spid = NULL;
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
        vi = Py_NewRef(Py_None);
    } else {
        vd = Py_NewRef(Py_None);
        vi = Py_NewRef(Py_None);
    }
    return exemplar_row(m, table, sid, j, time, vd, vi, tid, spid);
}

/* Start a point: *a0 is where its attributes begin in the table's lists, the repeated-value lists
 * are emptied, and its series key begins with the table, the context and the metric's identity; the
 * raw bytes of each attribute are added as they are read. */
static int point_begin(M *m, int table, Py_ssize_t *a0) {
    *a0 = PyList_GET_SIZE(m->attrs[table].keys);
    m->u1.n = m->u2.n = 0;
    m->skey.n = 0;
    m->exs.n = 0;
    uint8_t t = (uint8_t)table | m->key_flag;
    int64_t ci = m->ci_val;
    if (buf_put(&m->skey, &t, 1) < 0 || buf_put(&m->skey, &ci, 8) < 0) return -2;
    return buf_put(&m->skey, m->ikey.p, m->ikey.n);
}

static int point_attr(M *m, int table, const uint8_t *s, Py_ssize_t sn) {
    if (buf_piece(&m->skey, s, sn) < 0) return -2;
    return decode_kv(&m->c, &m->attrs[table], s, sn);
}

/* A point's exemplars, once its series_id is known: *n of them appended (0, PUNT or -2). */
typedef int (*exemplars_fn)(M *m, int table, PyObject *sid, Py_ssize_t *n);

static int pb_exemplars(M *m, int table, PyObject *sid, Py_ssize_t *n) {
    int rc;
    for (Py_ssize_t j = 0; j < m->exs.n; j++)
        if ((rc = decode_exemplar(m, table, sid, j, m->exs.v[j].p, m->exs.v[j].n)) < 0) return rc;
    *n = m->exs.n;
    return 0;
}

/* Finish a point: its series_id (memoised), its exemplars (exfn), and its row (9 shared columns,
 * then the shape columns, whose references it takes). */
static int point_end_ex(M *m, int table, Py_ssize_t a0, uint64_t start, uint64_t time, uint32_t flags,
                        PyObject **shape, int nshape, exemplars_fn exfn) {
    Py_ssize_t nex = 0;
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
    if ((rc = exfn(m, table, sid, &nex)) < 0) goto out;
    rc = -2;
    int64_t row[9];
    row[0] = m->ii_val;
    row[1] = PyLong_AsLongLong(sid);
    if (row[1] == -1 && PyErr_Occurred()) goto out;
    row[2] = (int64_t)start;
    row[3] = (int64_t)time;
    row[4] = (int64_t)PyList_GET_SIZE(m->attrs[table].keys);
    row[5] = (int64_t)flags;
    row[6] = (int64_t)nex;
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

static int point_end(M *m, int table, Py_ssize_t a0, uint64_t start, uint64_t time, uint32_t flags,
                     PyObject **shape, int nshape) {
    return point_end_ex(m, table, a0, start, time, flags, shape, nshape, pb_exemplars);
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
    long long rec;
} MMark;

/* Where the batch's lists end now, to undo what is appended after (m_rollback). */
static void m_mark(M *m, MMark *mark) {
    for (int i = 0; i < T_COUNT; i++) {
        mark->fixed[i] = PyByteArray_GET_SIZE(m->fixed[i]);
        mark->points[i] = mark->fixed[i] / 72;
        attrs_mark(&m->attrs[i], &mark->a[i]);
    }
    mark->exemplars = PyList_GET_SIZE(m->exemplars);
    attrs_mark(&m->ex_attrs, &mark->ea);
    mark->rec = m->rec;
}

static int m_rollback(M *m, MMark *mark) {
    m->rec = mark->rec;
    for (int i = 0; i < T_COUNT; i++) {
        if (PyByteArray_Resize(m->fixed[i], mark->fixed[i]) < 0 || attrs_rollback(&m->attrs[i], &mark->a[i]) < 0)
            return -2;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(m->shape[i]); j++)
            if (truncate_list(PyTuple_GET_ITEM(m->shape[i], j), mark->points[i]) < 0) return -2;
    }
    if (truncate_list(m->exemplars, mark->exemplars) < 0 || attrs_rollback(&m->ex_attrs, &mark->ea) < 0) return -2;
    return 0;
}

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
    m_mark(m, &mark);
    int rc = decode_resource(m, p, n);
    if (rc != PUNT) return rc;
    Py_CLEAR(m->c.err_msg);
    return m_rollback(m, &mark) < 0 ? -2 : PUNT;
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

/* ---------------------------------------------------------------------------------------------- */
/* OTLP/JSON text: one ExportMetricsServiceRequest line straight to the batch, when it is in the
 * strict common form (camelCase keys, each at most once, gauge / sum / histogram metrics, times as
 * digit strings or integers, asInt as a string or an integer, doubles as numbers or "NaN" /
 * "Infinity" / "-Infinity", hex ids, simple attribute values, no metric metadata). Anything else
 * gives up on the whole message (FALLBACK: nothing appended), and decode_json.decode_metrics, the
 * reference, decodes it from the parsed dict. The tokenizer is _wire_json.h's.
 *
 * Headers that come after what they head (a scope's or resource's schemaUrl after its items, as in
 * protobuf field order; a sum's aggregationTemporality and isMonotonic after its dataPoints) are
 * handled by decoding with the headers known so far (for a metric, the last metric's) and, when the
 * final ones differ, undoing that part (m_rollback) and decoding it again. The series_id memo is
 * keyed by the table (or 0x80), the context index, the metric's identity and the raw text of the
 * point's attributes; the metric memo by 8 bytes 0xFF (never the start of a protobuf key), then the
 * raw name, description and unit and the type, temporality and monotonicity. */

/* tattrs_each's writer for the metric attribute lists. */
static int tattr_push_list(void *a_, TAttr *e) {
    Attrs *a = a_;
    PyObject *k = e->key, *v = e->text;
    if (e->kbs) {
        if (key_str(NULL, e->kbs, e->kbn, &k) < 0) return -2;
    } else {
        Py_INCREF(k);
    }
    if (e->fs) v = e->fn ? PyUnicode_DecodeUTF8((const char *)e->fs, e->fn, NULL) : Py_NewRef(S_empty_str);
    else if (!v) v = PyUnicode_FromString(e->num);
    else Py_INCREF(v);
    int rc = -2;
    if (v && e->tag != S_string) {
        PyObject *pos = PyLong_FromSsize_t(PyList_GET_SIZE(a->keys));
        if (pos && PyList_Append(a->tag_pos, pos) == 0 && PyList_Append(a->tags, e->tag) == 0) rc = 0;
        Py_XDECREF(pos);
    } else if (v) {
        rc = 0;
    }
    if (rc == 0) rc = (append_key(a, k) < 0 || PyList_Append(a->vals, v) < 0) ? -2 : 0;
    Py_DECREF(k);
    Py_XDECREF(v);
    return rc;
}

/* Digits (with an optional '-') as an int64, as int() reads them; FALLBACK for anything else. */
static int digits_i64(const uint8_t *s, Py_ssize_t n, int64_t *out) {
    int neg = n > 0 && *s == '-';
    uint64_t u;
    if (digits_u64(s + neg, n - neg, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &u)) return FALLBACK;
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return 0;
}

/* An OTLP/JSON int64 (json_int64): an integer, or a string of digits with an optional '-'. */
static int tint64(T *t, int64_t *out) {
    const uint8_t *s;
    Py_ssize_t n;
    int x;
    if (tpeek(t) == '"') {
        if (tstr_span(t, &s, &n, &x) || x) return FALLBACK;
    } else if (tnum(t, &s, &n, &x) || !x) {
        return FALLBACK;
    }
    return digits_i64(s, n, out);
}

/* An OTLP/JSON double (json_double): a number, or "NaN", "Infinity", "-Infinity". */
static int tdouble(T *t, double *out) {
    const uint8_t *s;
    Py_ssize_t n;
    int x;
    if (tpeek(t) == '"') {
        if (tstr_span(t, &s, &n, &x) || x) return FALLBACK;
        if (!((n == 3 && !memcmp(s, "NaN", 3)) || (n == 8 && !memcmp(s, "Infinity", 8)) ||
              (n == 9 && !memcmp(s, "-Infinity", 9))))
            return FALLBACK;
        return text_double(s, n, out);
    }
    if (tnum(t, &s, &n, &x)) return FALLBACK;
    if (x) { /* an integer: the parser's int, then float() */
        int64_t v;
        if (digits_i64(s, n, &v)) return FALLBACK;
        *out = (double)v;
        return 0;
    }
    return text_double(s, n, out) || !isfinite(*out) ? FALLBACK : 0; /* beyond double: the parser's business */
}

/* An optional double: null leaves *has as it is. */
static int topt_double(T *t, double *out, int *has) {
    if (tnull(t)) return 0;
    *has = 1;
    return tdouble(t, out);
}

static int tbucket_item(T *t, void *arg) { /* bucketCounts[i] (_u64) */
    uint64_t v;
    int rc = tuint(t, UINT64_MAX, 1, &v);
    if (rc) return rc;
    return u64_put(arg, v);
}

static int tbound_item(T *t, void *arg) { /* explicitBounds[i] (json_double), as bits */
    double d;
    uint64_t bits;
    int rc = tdouble(t, &d);
    if (rc) return rc;
    memcpy(&bits, &d, 8);
    return u64_put(arg, bits);
}

typedef struct {
    M *m;
    int table;
    PyObject *sid;
    Py_ssize_t j;
} JEx;

/* One exemplar {"filteredAttributes", "timeUnixNano", "asInt" | "asDouble", "traceId", "spanId"}. */
static int texemplar(T *t, void *arg) {
    JEx *x = arg;
    M *m = x->m;
    uint64_t time = 0, seen = 0;
    int64_t iv = 0;
    double dv = 0;
    int has_int = 0, has_dbl = 0, tp = 0, sp = 0, more;
    uint8_t tb[16], sb[8];
    const uint8_t *ks;
    Py_ssize_t kn;
    TOBJ_BEGIN(t)
            if (KEY("filteredAttributes")) {
                SEEN(0);
                CHECK(tattrs_each(t, &m->ex_attrs, tattr_push_list));
            } else if (KEY("timeUnixNano")) {
                SEEN(1);
                CHECK(tuint(t, INT64_MAX_U, 1, &time));
            } else if (KEY("asInt")) {
                SEEN(2);
                if (!tnull(t)) {
                    CHECK(tint64(t, &iv));
                    has_int = 1;
                }
            } else if (KEY("asDouble")) {
                SEEN(3);
                CHECK(topt_double(t, &dv, &has_dbl));
            } else if (KEY("traceId")) {
                SEEN(4);
                CHECK(tid_raw(t, 16, tb, &tp));
            } else if (KEY("spanId")) {
                SEEN(5);
                CHECK(tid_raw(t, 8, sb, &sp));
            } else {
                goto fallback;
            }
    TOBJ_END(t)
    PyObject *vd, *vi;
    if (has_int) {
        vd = PyFloat_FromDouble((double)iv);
        vi = PyLong_FromLongLong(iv);
    } else {
        vd = has_dbl ? PyFloat_FromDouble(dv) : Py_NewRef(Py_None);
        vi = Py_NewRef(Py_None);
    }
    PyObject *tid = tp ? PyBytes_FromStringAndSize((const char *)tb, 16) : Py_NewRef(Py_None);
    PyObject *spid = sp ? PyBytes_FromStringAndSize((const char *)sb, 8) : Py_NewRef(Py_None);
    return exemplar_row(m, x->table, x->sid, x->j++, time, vd, vi, tid, spid);
fallback:
    return FALLBACK;
pyerr:
    return -2;
}

static int json_exemplars(M *m, int table, PyObject *sid, Py_ssize_t *n) {
    if (!m->jexa) return 0;
    T t = {m->jexa, m->jexe};
    JEx x = {m, table, sid, 0};
    int rc = tarray(&t, texemplar, &x);
    if (rc) return rc == FALLBACK ? PUNT : rc;
    *n = x.j;
    return 0;
}

/* One number or histogram data point (m->ii, the context and the series key prefix are set). */
static int tpoint(T *t, void *arg) {
    M *m = arg;
    int table = m->ikey.p[m->ikey.n - 6] >= 2 ? T_HIST : T_NUMBER; /* the kind, from the identity's tail */
    uint64_t start = 0, time = 0, flags = 0, count = 0, seen = 0;
    int64_t iv = 0;
    double dv = 0, sum = 0, mn = 0, mx = 0;
    int has_int = 0, has_dbl = 0, has_sum = 0, has_min = 0, has_max = 0, more, rc;
    const uint8_t *ks;
    Py_ssize_t kn, a0;
    if (point_begin(m, table, &a0) < 0) return -2;
    m->jexa = NULL;
    TOBJ_BEGIN(t)
            if (KEY("attributes")) {
                SEEN(0);
                tws(t);
                const uint8_t *s0 = t->p;
                CHECK(tattrs_each(t, &m->attrs[table], tattr_push_list));
                if (buf_piece(&m->skey, s0, t->p - s0) < 0) goto pyerr;
            } else if (KEY("startTimeUnixNano")) {
                SEEN(1);
                CHECK(tuint(t, INT64_MAX_U, 1, &start));
            } else if (KEY("timeUnixNano")) {
                SEEN(2);
                CHECK(tuint(t, INT64_MAX_U, 1, &time));
            } else if (KEY("flags")) {
                SEEN(3);
                CHECK(tuint(t, 0xFFFFFFFFULL, 0, &flags));
            } else if (KEY("exemplars")) {
                SEEN(4);
                if (!tnull(t)) {
                    if (tpeek(t) != '[') goto fallback;
                    m->jexa = t->p;
                    CHECK(tskip(t));
                    m->jexe = t->p;
                }
            } else if (table == T_NUMBER && KEY("asInt")) {
                SEEN(5);
                if (!tnull(t)) {
                    CHECK(tint64(t, &iv));
                    has_int = 1;
                }
            } else if (table == T_NUMBER && KEY("asDouble")) {
                SEEN(6);
                CHECK(topt_double(t, &dv, &has_dbl));
            } else if (table == T_HIST && KEY("count")) {
                SEEN(7);
                CHECK(tuint(t, UINT64_MAX, 1, &count));
            } else if (table == T_HIST && KEY("sum")) {
                SEEN(8);
                CHECK(topt_double(t, &sum, &has_sum));
            } else if (table == T_HIST && KEY("min")) {
                SEEN(9);
                CHECK(topt_double(t, &mn, &has_min));
            } else if (table == T_HIST && KEY("max")) {
                SEEN(10);
                CHECK(topt_double(t, &mx, &has_max));
            } else if (table == T_HIST && KEY("bucketCounts")) {
                SEEN(11);
                if (!tnull(t)) CHECK(tarray(t, tbucket_item, &m->u1));
            } else if (table == T_HIST && KEY("explicitBounds")) {
                SEEN(12);
                if (!tnull(t)) CHECK(tarray(t, tbound_item, &m->u2));
            } else {
                goto fallback;
            }
    TOBJ_END(t)
    PyObject *shape[6];
    int nshape = 2;
    if (table == T_NUMBER) {
        if (has_int) {
            shape[0] = PyFloat_FromDouble((double)iv);
            shape[1] = PyLong_FromLongLong(iv);
        } else {
            shape[0] = has_dbl ? PyFloat_FromDouble(dv) : Py_NewRef(Py_None);
            shape[1] = Py_NewRef(Py_None);
        }
    } else {
        if (histogram_bad(count, &m->u1, &m->u2)) goto fallback;
        uint64_t b[3];
        memcpy(&b[0], &sum, 8);
        memcpy(&b[1], &mn, 8);
        memcpy(&b[2], &mx, 8);
        nshape = 6;
        shape[0] = PyLong_FromUnsignedLongLong(count);
        shape[1] = opt_float(has_sum, b[0]);
        shape[2] = opt_float(has_min, b[1]);
        shape[3] = opt_float(has_max, b[2]);
        shape[4] = u64_list(&m->u1, 0);
        shape[5] = u64_list(&m->u2, 1);
    }
    rc = point_end_ex(m, table, a0, start, time, (uint32_t)flags, shape, nshape, json_exemplars);
    return rc == PUNT ? FALLBACK : rc;
fallback:
    return FALLBACK;
pyerr:
    return -2;
}

typedef struct {
    PyObject *scope, *surl;
} JScope;

typedef struct {
    M *m;
    PyObject *ctx_fn;
    PyObject *res, *url; /* the current resource's headers, as far as read */
    JScope *sc;          /* its scopes' final headers, registered at its end */
    Py_ssize_t nsc, capsc;
    int64_t temp;        /* the last sum or histogram's temporality, and sum's monotonicity: the guess */
    int mono;
} J;

/* A raw string (no escapes, valid UTF-8; null: absent) for the metric's identity. */
static int traw_str(T *t, const uint8_t **s, Py_ssize_t *n) {
    int esc;
    *s = (const uint8_t *)"";
    *n = 0;
    if (tnull(t)) return 0;
    if (tstr_span(t, s, n, &esc) || esc || !utf8_valid(*s, *n)) return FALLBACK;
    return 0;
}

/* The metric table index of the current metric (memoised), and the start of its series keys. */
static int tinfo(M *m, int kind, const uint8_t **f, const Py_ssize_t *fn, int64_t temp, int mono) {
    static const uint8_t JMARK[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    int has_temp = kind == 1 || kind == 2;
    uint8_t tail[6] = {(uint8_t)kind, (uint8_t)(has_temp ? temp : 0xFF), 0, 0, 0, (uint8_t)(kind == 1 ? mono : 2)};
    m->ikey.n = 0;
    if (buf_put(&m->ikey, JMARK, 8) < 0 || buf_piece(&m->ikey, f[0], fn[0]) < 0 ||
        buf_piece(&m->ikey, f[1], fn[1]) < 0 || buf_piece(&m->ikey, f[2], fn[2]) < 0 || buf_put(&m->ikey, tail, 6) < 0)
        return -2;
    m->name_p = f[0];
    m->name_n = fn[0];
    Py_CLEAR(m->name);
    Py_CLEAR(m->ii);
    PyObject *ikey = PyBytes_FromStringAndSize((const char *)m->ikey.p, m->ikey.n);
    if (!ikey) return -2;
    m->ii = PyDict_GetItemWithError(m->info_memo, ikey);
    if (m->ii) {
        Py_INCREF(m->ii);
    } else if (!PyErr_Occurred()) {
        PyObject *name = metric_name(m), *desc = NULL, *unit = NULL, *md = PyList_New(0), *tobj = NULL, *mobj = NULL;
        desc = fn[1] ? PyUnicode_DecodeUTF8((const char *)f[1], fn[1], NULL) : Py_NewRef(Py_None);
        unit = fn[2] ? PyUnicode_DecodeUTF8((const char *)f[2], fn[2], NULL) : Py_NewRef(Py_None);
        tobj = has_temp ? PyLong_FromLongLong(temp) : Py_NewRef(Py_None);
        mobj = kind == 1 ? PyBool_FromLong(mono) : Py_NewRef(Py_None);
        if (name && desc && unit && md && tobj && mobj)
            m->ii = PyObject_CallFunction(m->metric_fn, "OOOOOOO", name, desc, unit, S_mtype[kind], tobj, mobj, md);
        Py_XDECREF(desc);
        Py_XDECREF(unit);
        Py_XDECREF(md);
        Py_XDECREF(tobj);
        Py_XDECREF(mobj);
        if (m->ii == Py_None) Py_CLEAR(m->ii); /* (metric_fn gives up only on metadata, which is absent) */
        if (m->ii && PyDict_SetItem(m->info_memo, ikey, m->ii) < 0) Py_CLEAR(m->ii);
    }
    Py_DECREF(ikey);
    if (!m->ii) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "metric_fn gave no index");
        return -2;
    }
    m->ii_val = PyLong_AsLong(m->ii);
    return m->ii_val == -1 && PyErr_Occurred() ? -2 : 0;
}

/* A metric's data object {"dataPoints", "aggregationTemporality", "isMonotonic"}: its points
 * decoded with the temporality and monotonicity read before them, or else the guess (*temp, *mono
 * on entry), which then get the values read. *decoded: the metric was added (tinfo) and its points
 * decoded; *stale: with another identity than the values read (to be undone and done again). */
static int tdata(T *t, M *m, int kind, const uint8_t **f, const Py_ssize_t *fn, int64_t *temp, int *mono,
                 int *decoded, int *stale) {
    int64_t used_t = *temp;
    int used_m = *mono, more;
    uint64_t seen = 0;
    const uint8_t *ks;
    Py_ssize_t kn;
    *temp = 0;
    *mono = 0;
    *decoded = *stale = 0;
    TOBJ_BEGIN(t)
            if (KEY("dataPoints")) {
                SEEN(0);
                if (!tnull(t)) {
                    if (seen & 2) used_t = *temp;
                    if (seen & 4) used_m = *mono;
                    CHECK(tinfo(m, kind, f, fn, used_t, used_m));
                    *decoded = 1;
                    CHECK(tarray(t, tpoint, m));
                }
            } else if ((kind == 1 || kind == 2) && KEY("aggregationTemporality")) {
                SEEN(1);
                if (!tnull(t)) {
                    const uint8_t *s;
                    Py_ssize_t n;
                    int x;
                    if (tpeek(t) == '"' || tnum(t, &s, &n, &x) || !x || n != 1 || *s < '0' || *s > '2') goto fallback;
                    *temp = *s - '0';
                }
            } else if (kind == 1 && KEY("isMonotonic")) {
                SEEN(2);
                tws(t);
                if (t->end - t->p >= 4 && memcmp(t->p, "true", 4) == 0) {
                    t->p += 4;
                    *mono = 1;
                } else if (t->end - t->p >= 5 && memcmp(t->p, "false", 5) == 0) {
                    t->p += 5;
                } else if (!tnull(t)) {
                    goto fallback;
                }
            } else {
                goto fallback;
            }
    TOBJ_END(t)
    *stale = *decoded && (used_t != *temp || (kind == 1 && used_m != *mono));
    return 0;
fallback:
    return FALLBACK;
pyerr:
    return -2;
}

/* {"name", "description", "unit", "gauge" | "sum" | "histogram"} */
static int tmetric(T *t, void *arg) {
    J *q = arg;
    M *m = q->m;
    const uint8_t *f[3] = {(const uint8_t *)"", (const uint8_t *)"", (const uint8_t *)""}, *ks, *dpos = NULL;
    Py_ssize_t fn[3] = {0, 0, 0}, kn;
    uint64_t seen = 0;
    int kind = -1, more, decoded = 0, stale = 0;
    int64_t temp = 0;
    int mono = 0;
    MMark mark;
    TOBJ_BEGIN(t)
            int fi = KEY("name") ? 0 : KEY("description") ? 1 : KEY("unit") ? 2 : -1;
            if (fi >= 0) {
                SEEN(fi);
                if (kind >= 0) goto fallback; /* after the data: not the common order */
                CHECK(traw_str(t, &f[fi], &fn[fi]));
            } else if (KEY("gauge") || KEY("sum") || KEY("histogram")) {
                SEEN(3);
                kind = ks[0] == 'g' ? 0 : ks[0] == 's' ? 1 : 2;
                temp = kind ? q->temp : 0;
                mono = kind == 1 ? q->mono : 0;
                tws(t);
                dpos = t->p;
                m_mark(m, &mark);
                CHECK(tdata(t, m, kind, f, fn, &temp, &mono, &decoded, &stale));
            } else {
                goto fallback;
            }
    TOBJ_END(t)
    if (kind < 0) goto fallback; /* no data: the dict decoder sets it aside */
    if (kind) { /* the next metric's guess */
        q->temp = temp;
        if (kind == 1) q->mono = mono;
    }
    if (stale) { /* the guess was wrong: again, with the values read */
        T again = {dpos, t->end};
        if (m_rollback(m, &mark) < 0) goto pyerr;
        CHECK(tdata(&again, m, kind, f, fn, &temp, &mono, &decoded, &stale));
    }
    if (!decoded) CHECK(tinfo(m, kind, f, fn, temp, mono)); /* the dict decoder adds the metric all the same */
    return 0;
fallback:
    return FALLBACK;
pyerr:
    return -2;
}

/* The context of the current scope's points: ctx_fn mode 0 -> (index, resource_id, service_name). */
static int tmctx(J *q, PyObject *scope, PyObject *surl) {
    M *m = q->m;
    PyObject *ctx = PyObject_CallFunction(q->ctx_fn, "iOOOO", 0, q->res ? q->res : Py_None,
                                          q->url ? q->url : Py_None, scope ? scope : Py_None, surl ? surl : Py_None);
    if (!ctx) return -2;
    if (ctx == Py_None) {
        Py_DECREF(ctx);
        return FALLBACK;
    }
    if (!PyTuple_Check(ctx) || PyTuple_GET_SIZE(ctx) != 3) {
        Py_DECREF(ctx);
        PyErr_SetString(PyExc_TypeError, "ctx_fn(0, ...) must return (context index, resource_id, service_name)");
        return -2;
    }
    Py_XSETREF(m->ci, Py_NewRef(PyTuple_GET_ITEM(ctx, 0)));
    Py_XSETREF(m->rid, Py_NewRef(PyTuple_GET_ITEM(ctx, 1)));
    Py_XSETREF(m->svc, Py_NewRef(PyTuple_GET_ITEM(ctx, 2)));
    Py_DECREF(ctx);
    m->ci_val = PyLong_AsLong(m->ci);
    return m->ci_val == -1 && PyErr_Occurred() ? -2 : 0;
}

static void tmscopes_clear(J *q) {
    for (Py_ssize_t i = 0; i < q->nsc; i++) {
        Py_XDECREF(q->sc[i].scope);
        Py_XDECREF(q->sc[i].surl);
    }
    q->nsc = 0;
}

static int tmscope(T *t, void *arg);

/* A resource (level 0: {"resource", "scopeMetrics", "schemaUrl"}) or scope (level 1: {"scope",
 * "metrics", "schemaUrl"}) object, in any order; its header's raw text into *hdr and its schema URL
 * into *url (new references, also on failure). The items are decoded when their key is read, with
 * the headers read so far, and once more from their text at the end if a header came after them. */
static int tcontainer(T *t, J *q, int level, PyObject **hdr, PyObject **url) {
    const uint8_t *ks, *pos = NULL;
    Py_ssize_t kn;
    uint64_t seen = 0;
    int more, late = 0;
    MMark mark;
    TOBJ_BEGIN(t)
            if (level ? KEY("scope") : KEY("resource")) {
                SEEN(0);
                late = pos != NULL;
                CHECK(traw(t, hdr));
            } else if (KEY("schemaUrl")) {
                SEEN(1);
                late = pos != NULL;
                if (!tnull(t)) CHECK(tstr(t, url));
            } else if (level ? KEY("metrics") : KEY("scopeMetrics")) {
                SEEN(2);
                if (!tnull(t)) {
                    tws(t);
                    pos = t->p;
                    m_mark(q->m, &mark);
                    if (level) CHECK(tmctx(q, *hdr, *url));
                    CHECK(tarray(t, level ? tmetric : tmscope, q));
                }
            } else {
                goto fallback;
            }
    TOBJ_END(t)
    if (late) {
        T again = {pos, t->end};
        if (m_rollback(q->m, &mark) < 0) goto pyerr;
        if (level) CHECK(tmctx(q, *hdr, *url));
        else tmscopes_clear(q);
        CHECK(tarray(&again, level ? tmetric : tmscope, q));
    }
    return 0;
fallback:
    return FALLBACK;
pyerr:
    return -2;
}

/* A scope: its points, and its final headers kept for the registration at the resource's end. */
static int tmscope(T *t, void *arg) {
    J *q = arg;
    PyObject *scope = NULL, *surl = NULL;
    int rc = tcontainer(t, q, 1, &scope, &surl);
    if (!rc && q->nsc == q->capsc && grow((void **)&q->sc, &q->capsc, q->nsc + 1, sizeof(JScope), 8) < 0) rc = -2;
    if (rc) {
        Py_XDECREF(scope);
        Py_XDECREF(surl);
        return rc;
    }
    q->sc[q->nsc++] = (JScope){scope, surl}; /* takes the references */
    return 0;
}

/* A resource; at its end the resource and each scope are registered (ctx_fn modes 1 and 2), as
 * the dict decoder does. */
static int tmresource(T *t, void *arg) {
    J *q = arg;
    int rc = tcontainer(t, q, 0, &q->res, &q->url);
    for (Py_ssize_t i = -1; !rc && i < q->nsc; i++) {
        PyObject *x = PyObject_CallFunction(q->ctx_fn, "iOOOO", i < 0 ? 1 : 2, q->res ? q->res : Py_None,
                                            q->url ? q->url : Py_None,
                                            i < 0 || !q->sc[i].scope ? Py_None : q->sc[i].scope,
                                            i < 0 || !q->sc[i].surl ? Py_None : q->sc[i].surl);
        rc = !x ? -2 : x == Py_None ? FALLBACK : 0;
        Py_XDECREF(x);
    }
    tmscopes_clear(q);
    Py_CLEAR(q->res);
    Py_CLEAR(q->url);
    return rc;
}

PyDoc_STRVAR(decode_json_text_doc,
"decode_json_text(text, first_record, state, ctx_fn) -> int | None\n\n"
"Decode one OTLP/JSON {\"resourceMetrics\": ...} message from its text into a MetricBatch's lists,\n"
"when it is in the strict common form; returns the record index after its last point. Otherwise\n"
"appends nothing and returns None: decode it from parsed JSON. state as for decode_block (res_fn,\n"
"scope_fn and pending are not used; fallback must be callable, and is not called either);\n"
"metric_fn gets no metadata (an empty list). ctx_fn(mode, resource_json, schema_url, scope_json,\n"
"scope_schema_url): mode 0 gives (context index, resource_id, service_name) for the headers or\n"
"None (give up); at the end of each resource, mode 1 registers the resource and mode 2 each scope\n"
"(None: give up), as for _wire.decode_json_text.");

static PyObject *decode_json_text(PyObject *self, PyObject *args) {
    Py_buffer buf;
    long long rec;
    PyObject *st, *ctx_fn, *result = NULL;
    if (!PyArg_ParseTuple(args, "y*LO!O", &buf, &rec, &PyTuple_Type, &st, &ctx_fn)) return NULL;
    M m;
    J q = {&m, ctx_fn, NULL, NULL, NULL, 0, 0, 2, 1};
    MMark mark;
    if (m_init(&m, st, rec) < 0) goto done;
    m.key_flag = 0x80;
    m_mark(&m, &mark);
    T t = {buf.buf, (const uint8_t *)buf.buf + buf.len};
    const uint8_t *ks;
    Py_ssize_t kn;
    int rc = tch(&t, '{');
    if (!rc && tpeek(&t) == '}') rc = FALLBACK; /* {}: let the dict path count it */
    if (!rc) rc = tkey(&t, &ks, &kn);
    if (!rc && !KEY("resourceMetrics")) rc = FALLBACK;
    if (!rc && !tnull(&t)) rc = tarray(&t, tmresource, &q);
    if (!rc) rc = tch(&t, '}');
    if (!rc) {
        tws(&t);
        if (t.p != t.end) rc = FALLBACK; /* trailing text */
    }
    if (rc == 0) {
        result = PyLong_FromLongLong(m.rec);
    } else if (rc == -2) { /* a Python error: undo, then propagate it */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        m_rollback(&m, &mark);
        PyErr_Restore(et, ev, tb);
    } else if (m_rollback(&m, &mark) == 0) {
        result = Py_NewRef(Py_None);
    }
done:
    tmscopes_clear(&q);
    PyMem_Free(q.sc);
    Py_XDECREF(q.res);
    Py_XDECREF(q.url);
    m_free(&m);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_json_text", decode_json_text, METH_VARARGS, decode_json_text_doc},
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
