/* Compiled fast path of events/coalesce.py's Coalescer.add_batch: the reader's per-record
 * loop, run once per receive batch (a connect event is 4 records, an exec ~7).
 *
 * Optional: coalesce.py uses this module when it imports (scripts/build_accel.py compiles it
 * in place at `make install`) and its own loop (Coalescer.add_batch_python) otherwise; the
 * same tests run on both (tests/events/test_coalesce.py: add_batch against add, record by
 * record, with malformed headers and stamps). It does only what add_batch_python does
 * without a call per record, the three cases of nearly every record:
 *   - the first record of a new event (the next serial, while fewer than max_inflight wait),
 *   - a record joining its event (a record type the event does not have yet),
 *   - the EOE ending it (Coalescer._complete is called, as the Python loop calls it),
 * and calls back into coalesce.py for everything else (Coalescer._add_stamped, _note_serial
 * unless the serial is the next one, add_batch_python for an item that is not a (int, bytes)
 * tuple). It reads the record header as records.py's split_header and parse_stamp do: the
 * stamp `audit(STAMP):`, then DIGITS.DDD:DIGITS cut at the first '.' and the first ':'
 * after it. The kernel's constants and the Event class come from coalesce.py (bind), never a
 * second copy here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DIGITS 18 /* longer numbers (not the kernel's) are left to parse_stamp */

static inline PyObject *new_ref(PyObject *o) /* Py_NewRef, which Python 3.9 lacks */
{
    Py_INCREF(o);
    return o;
}

/* What bind() was given: coalesce.py's Event, Ending.BY_KERNEL, RecordParseError, the kernel's
 * record-type constants and SERIAL_MASK. */
static PyTypeObject *event_type;
static PyObject *by_kernel, *parse_error, *below_first_user_msg;
static long first_user_msg, replace_type, eoe_type, last_daemon, kernel_type;
static unsigned long long serial_mask;
/* Event's slots (member descriptors), set and read as `event.name = value` does. */
static PyObject *d_types, *d_payloads, *d_ended, *d_sec, *d_msec, *d_serial, *d_since, *d_records;
static PyObject *s_inflight, *s_recent, *s_max_inflight, *s_complete, *s_add_stamped,
    *s_note_serial, *s_high_serial, *s_missing_order, *s_add_batch_python;

static inline int slot_set(PyObject *descr, PyObject *obj, PyObject *value)
{
    return Py_TYPE(descr)->tp_descr_set(descr, obj, value);
}

static inline PyObject *slot_get(PyObject *descr, PyObject *obj) /* new reference */
{
    return Py_TYPE(descr)->tp_descr_get(descr, obj, (PyObject *)Py_TYPE(obj));
}

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

/* records.split_header: where the ")" closing `audit(` is, or -1 if the payload is not a
 * record (then split_header raises RecordParseError). */
static Py_ssize_t header_close(const char *p, Py_ssize_t n)
{
    if (n < 6 || memcmp(p, "audit(", 6) != 0)
        return -1;
    for (Py_ssize_t i = 6; i + 1 < n; i++) {
        const char *found = memchr(p + i, ')', (size_t)(n - 1 - i));
        if (found == NULL)
            return -1;
        i = found - p;
        if (p[i + 1] == ':')
            return i;
    }
    return -1;
}

static int digits(const char *p, Py_ssize_t n)
{
    if (n == 0)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!is_digit(p[i]))
            return 0;
    return 1;
}

static long long decimal(const char *p, Py_ssize_t n)
{
    long long value = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        value = value * 10 + (p[i] - '0');
    return value;
}

/* records.parse_stamp: 0 with the three numbers, -1 when malformed (RecordParseError),
 * 1 when well formed but a number is too long for here (parse_stamp's int() reads it). */
static int stamp_numbers(const char *s, Py_ssize_t n, long long *sec, long long *msec,
                         long long *serial)
{
    const char *dot = memchr(s, '.', (size_t)n);
    if (dot == NULL)
        return -1;
    const char *rest = dot + 1;
    Py_ssize_t rest_n = n - (rest - s);
    const char *colon = memchr(rest, ':', (size_t)rest_n);
    if (colon == NULL)
        return -1;
    Py_ssize_t sec_n = dot - s, msec_n = colon - rest, serial_n = rest_n - msec_n - 1;
    if (msec_n != 3 || !digits(s, sec_n) || !digits(rest, msec_n) ||
        !digits(colon + 1, serial_n))
        return -1;
    if (sec_n > MAX_DIGITS || serial_n > MAX_DIGITS)
        return 1;
    *sec = decimal(s, sec_n);
    *msec = decimal(rest, msec_n);
    *serial = decimal(colon + 1, serial_n);
    return 0;
}

/* Coalescer._note_serial(serial): its first case (the next serial, no hole waiting to
 * settle) here, any other by the method. */
static int note_serial(PyObject *self, PyObject *note, PyObject *serial_obj, long long serial)
{
    PyObject *high = PyObject_GetAttr(self, s_high_serial);
    if (high == NULL)
        return -1;
    if (PyLong_CheckExact(high)) {
        int overflow;
        long long h = PyLong_AsLongLongAndOverflow(high, &overflow);
        if (!overflow && !(h == -1 && PyErr_Occurred()) &&
            (((unsigned long long)serial - (unsigned long long)h) & serial_mask) == 1) {
            PyObject *order = PyObject_GetAttr(self, s_missing_order);
            if (order == NULL) {
                Py_DECREF(high);
                return -1;
            }
            int waiting = PyObject_IsTrue(order);
            Py_DECREF(order);
            if (waiting < 0) {
                Py_DECREF(high);
                return -1;
            }
            if (!waiting) {
                Py_DECREF(high);
                return PyObject_SetAttr(self, s_high_serial, serial_obj);
            }
        }
    }
    Py_DECREF(high);
    PyErr_Clear(); /* an overflow check's error, if any: the method decides */
    PyObject *done = PyObject_CallOneArg(note, serial_obj);
    if (done == NULL)
        return -1;
    Py_DECREF(done);
    return 0;
}

/* Event([record_type], [payload], False, (sec, msec, serial)) with since = now. */
static PyObject *new_event(PyObject *record_type, PyObject *payload, PyObject *now,
                           PyObject *sec, PyObject *msec, PyObject *serial)
{
    PyObject *event = event_type->tp_alloc(event_type, 0);
    if (event == NULL)
        return NULL;
    PyObject *types = PyList_New(1), *payloads = PyList_New(1);
    if (types == NULL || payloads == NULL)
        goto error;
    PyList_SET_ITEM(types, 0, new_ref(record_type));
    PyList_SET_ITEM(payloads, 0, new_ref(payload));
    if (slot_set(d_sec, event, sec) < 0 || slot_set(d_msec, event, msec) < 0 ||
        slot_set(d_serial, event, serial) < 0 || slot_set(d_types, event, types) < 0 ||
        slot_set(d_payloads, event, payloads) < 0 || slot_set(d_ended, event, Py_False) < 0 ||
        slot_set(d_since, event, now) < 0 || slot_set(d_records, event, Py_None) < 0)
        goto error;
    Py_DECREF(types);
    Py_DECREF(payloads);
    return event;
error:
    Py_XDECREF(types);
    Py_XDECREF(payloads);
    Py_DECREF(event);
    return NULL;
}

/* Appends the events of `done` (a list) to `out`. */
static int extend(PyObject *out, PyObject *done)
{
    if (PyList_CheckExact(done)) {
        Py_ssize_t n = PyList_GET_SIZE(done);
        return n == 0 ? 0 : PyList_SetSlice(out, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, done);
    }
    PyObject *none = PyObject_CallMethod(out, "extend", "O", done);
    if (none == NULL)
        return -1;
    Py_DECREF(none);
    return 0;
}

/* One record of the batch the fast way; 1 when it was not one of the fast cases (then the
 * caller hands it to _add_stamped), 0 when done, -1 on an error. `*stamp_out` is the record's
 * stamp when it was cut (NULL with *bad set when the header is malformed). */
typedef struct {
    PyObject *self, *inflight, *recent, *complete, *note, *out, *now;
    Py_ssize_t cap;
} batch_t;

static int fast_record(batch_t *b, long t, PyObject *t_obj, PyObject *payload,
                       PyObject **stamp_out, int *bad)
{
    const char *p = PyBytes_AS_STRING(payload);
    Py_ssize_t close = header_close(p, PyBytes_GET_SIZE(payload));
    if (close < 0) {
        *bad = 1;
        return 0;
    }
    PyObject *stamp = *stamp_out = PyBytes_FromStringAndSize(p + 6, close - 6);
    if (stamp == NULL)
        return -1;
    PyObject *pending = PyDict_GetItemWithError(b->inflight, stamp);
    if (pending != NULL) {
        if (t == eoe_type) {
            Py_INCREF(pending);
            if (PyDict_DelItem(b->inflight, stamp) < 0) {
                Py_DECREF(pending);
                return -1;
            }
            PyObject *event =
                PyObject_CallFunctionObjArgs(b->complete, stamp, pending, by_kernel, NULL);
            Py_DECREF(pending);
            if (event == NULL)
                return -1;
            int failed = PyList_Append(b->out, event);
            Py_DECREF(event);
            return failed ? -1 : 0;
        }
        PyObject *types = slot_get(d_types, pending);
        if (types == NULL)
            return -1;
        int result = 1;
        if (PyList_CheckExact(types)) {
            int has = PySequence_Contains(types, t_obj);
            if (has < 0)
                result = -1;
            else if (!has) {
                PyObject *payloads = slot_get(d_payloads, pending);
                if (payloads == NULL || !PyList_CheckExact(payloads))
                    result = payloads == NULL ? -1 : 1;
                else
                    result = (PyList_Append(types, t_obj) < 0 ||
                              PyList_Append(payloads, payload) < 0)
                                 ? -1
                                 : 0;
                Py_XDECREF(payloads);
            }
        }
        Py_DECREF(types);
        return result;
    }
    if (PyErr_Occurred())
        return -1;
    if (!(last_daemon < t && t < kernel_type && t != eoe_type &&
          PyDict_GET_SIZE(b->inflight) < b->cap))
        return 1;
    int seen = PyDict_Contains(b->recent, stamp);
    if (seen)
        return seen < 0 ? -1 : 1;
    long long sec, msec, serial;
    int parsed = stamp_numbers(PyBytes_AS_STRING(stamp), PyBytes_GET_SIZE(stamp), &sec, &msec,
                               &serial);
    if (parsed < 0) {
        *bad = 1;
        return 0;
    }
    if (parsed > 0)
        return 1;
    PyObject *sec_obj = PyLong_FromLongLong(sec), *msec_obj = PyLong_FromLongLong(msec),
             *serial_obj = PyLong_FromLongLong(serial), *event = NULL;
    int result = -1;
    if (sec_obj != NULL && msec_obj != NULL && serial_obj != NULL &&
        note_serial(b->self, b->note, serial_obj, serial) == 0) {
        event = new_event(t_obj, payload, b->now, sec_obj, msec_obj, serial_obj);
        if (event != NULL && PyDict_SetItem(b->inflight, stamp, event) == 0)
            result = 0;
    }
    Py_XDECREF(event);
    Py_XDECREF(sec_obj);
    Py_XDECREF(msec_obj);
    Py_XDECREF(serial_obj);
    return result;
}

/* add_batch(coalescer, records, now) -> (events, taken, errors), as
 * coalescer.add_batch_python(records, now) returns them. */
static PyObject *add_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add_batch(coalescer, records, now)");
        return NULL;
    }
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_ingestfast.bind was not called");
        return NULL;
    }
    PyObject *self = args[0], *records = args[1], *now = args[2];
    batch_t b = {self, NULL, NULL, NULL, NULL, NULL, now, 0};
    PyObject *seq = NULL, *add_stamped = NULL, *cap = NULL;
    Py_ssize_t taken = 0, errors = 0;
    b.inflight = PyObject_GetAttr(self, s_inflight);
    b.recent = PyObject_GetAttr(self, s_recent);
    if (b.inflight == NULL || b.recent == NULL)
        goto error;
    if (!PyDict_CheckExact(b.inflight) || !PyDict_Check(b.recent)) {
        Py_DECREF(b.inflight);
        Py_DECREF(b.recent);
        return PyObject_CallMethodObjArgs(self, s_add_batch_python, records, now, NULL);
    }
    cap = PyObject_GetAttr(self, s_max_inflight);
    if (cap == NULL)
        goto error;
    b.cap = PyLong_AsSsize_t(cap);
    if (b.cap == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            goto error;
        PyErr_Clear(); /* a cap beyond any dict's size */
        b.cap = PY_SSIZE_T_MAX;
    }
    b.complete = PyObject_GetAttr(self, s_complete);
    b.note = PyObject_GetAttr(self, s_note_serial);
    add_stamped = PyObject_GetAttr(self, s_add_stamped);
    seq = PySequence_Fast(records, "records must be a sequence of (type, payload)");
    b.out = PyList_New(0);
    if (b.complete == NULL || b.note == NULL || add_stamped == NULL || seq == NULL ||
        b.out == NULL)
        goto error;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i], *t_obj, *payload;
        long t;
        int overflow = 0;
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2 ||
            !PyLong_CheckExact(t_obj = PyTuple_GET_ITEM(item, 0)) ||
            !PyBytes_CheckExact(payload = PyTuple_GET_ITEM(item, 1)) ||
            ((t = PyLong_AsLongAndOverflow(t_obj, &overflow)), overflow)) {
            /* Not the reader's (int, bytes): the Python loop takes it. */
            PyObject *one = PyTuple_Pack(1, item);
            if (one == NULL)
                goto error;
            PyObject *got =
                PyObject_CallMethodObjArgs(self, s_add_batch_python, one, now, NULL);
            Py_DECREF(one);
            if (got == NULL)
                goto error;
            Py_ssize_t more_taken, more_errors;
            PyObject *events;
            int ok = PyTuple_Check(got) &&
                     PyArg_ParseTuple(got, "Onn", &events, &more_taken, &more_errors) &&
                     extend(b.out, events) == 0;
            Py_DECREF(got);
            if (!ok)
                goto error;
            taken += more_taken;
            errors += more_errors;
            continue;
        }
        if (t < first_user_msg) {
            int record = PySet_Contains(below_first_user_msg, t_obj);
            if (record < 0)
                goto error;
            if (!record)
                continue; /* a control reply */
        }
        else if (t == replace_type)
            continue; /* the kernel's liveness probe */
        taken++;
        PyObject *stamp = NULL;
        int bad = 0;
        int done = fast_record(&b, t, t_obj, payload, &stamp, &bad);
        if (done > 0) {
            PyObject *events =
                PyObject_CallFunctionObjArgs(add_stamped, stamp, t_obj, payload, now, NULL);
            if (events == NULL) {
                if (!PyErr_ExceptionMatches(parse_error)) {
                    Py_DECREF(stamp);
                    goto error;
                }
                PyErr_Clear();
                bad = 1;
                done = 0;
            }
            else {
                done = extend(b.out, events);
                Py_DECREF(events);
            }
        }
        Py_XDECREF(stamp);
        if (done < 0)
            goto error;
        errors += bad;
    }
    Py_DECREF(seq);
    Py_DECREF(add_stamped);
    Py_DECREF(cap);
    Py_DECREF(b.inflight);
    Py_DECREF(b.recent);
    Py_DECREF(b.complete);
    Py_DECREF(b.note);
    return Py_BuildValue("(Nnn)", b.out, taken, errors);
error:
    Py_XDECREF(seq);
    Py_XDECREF(add_stamped);
    Py_XDECREF(cap);
    Py_XDECREF(b.inflight);
    Py_XDECREF(b.recent);
    Py_XDECREF(b.complete);
    Py_XDECREF(b.note);
    Py_XDECREF(b.out);
    return NULL;
}

static int descriptor(PyObject *type, const char *name, PyObject **slot)
{
    PyObject *d = PyObject_GetAttrString(type, name);
    if (d == NULL)
        return -1;
    if (Py_TYPE(d)->tp_descr_get == NULL || Py_TYPE(d)->tp_descr_set == NULL) {
        PyErr_Format(PyExc_TypeError, "Event.%s is not a slot", name);
        Py_DECREF(d);
        return -1;
    }
    Py_XSETREF(*slot, d);
    return 0;
}

/* bind(Event, by_kernel, RecordParseError, records_below_first_user_msg,
 *      first_user_msg, replace, eoe, last_daemon, kernel, serial_mask) */
static PyObject *bind(PyObject *module, PyObject *args)
{
    PyObject *event, *ending, *error, *below;
    long first, replace, eoe, daemon, kernel;
    unsigned long long mask;
    if (!PyArg_ParseTuple(args, "O!OOO!lllllK:bind", &PyType_Type, &event, &ending, &error,
                          &PyFrozenSet_Type, &below, &first, &replace, &eoe, &daemon, &kernel,
                          &mask))
        return NULL;
    if (((PyTypeObject *)event)->tp_alloc == NULL) {
        PyErr_SetString(PyExc_TypeError, "Event cannot be allocated");
        return NULL;
    }
    if (descriptor(event, "types", &d_types) < 0 ||
        descriptor(event, "payloads", &d_payloads) < 0 ||
        descriptor(event, "ended", &d_ended) < 0 || descriptor(event, "sec", &d_sec) < 0 ||
        descriptor(event, "msec", &d_msec) < 0 || descriptor(event, "serial", &d_serial) < 0 ||
        descriptor(event, "since", &d_since) < 0 ||
        descriptor(event, "_records", &d_records) < 0)
        return NULL;
    Py_XSETREF(event_type, (PyTypeObject *)new_ref(event));
    Py_XSETREF(by_kernel, new_ref(ending));
    Py_XSETREF(parse_error, new_ref(error));
    Py_XSETREF(below_first_user_msg, new_ref(below));
    first_user_msg = first;
    replace_type = replace;
    eoe_type = eoe;
    last_daemon = daemon;
    kernel_type = kernel;
    serial_mask = mask;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"add_batch", (PyCFunction)(void (*)(void))add_batch, METH_FASTCALL,
     "add_batch(coalescer, records, now): Coalescer.add_batch_python's result, its common "
     "cases in C."},
    {"bind", bind, METH_VARARGS,
     "bind(Event, by_kernel, RecordParseError, below, first_user_msg, replace, eoe, "
     "last_daemon, kernel, serial_mask): what add_batch takes from coalesce.py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_ingestfast", "Compiled fast path of events/coalesce.py.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ingestfast(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&s_inflight, "_inflight"},
        {&s_recent, "_recent"},
        {&s_max_inflight, "max_inflight"},
        {&s_complete, "_complete"},
        {&s_add_stamped, "_add_stamped"},
        {&s_note_serial, "_note_serial"},
        {&s_high_serial, "_high_serial"},
        {&s_missing_order, "_missing_order"},
        {&s_add_batch_python, "add_batch_python"},
    };
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        *names[k].slot = PyUnicode_InternFromString(names[k].text);
        if (*names[k].slot == NULL)
            return NULL;
    }
    return PyModule_Create(&module_def);
}
