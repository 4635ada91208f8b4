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
 *   - the EOE ending it (Coalescer._complete's work for an event the kernel ended: the
 *     ended flag, the shared types tuple, the recent stamps),
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
static Py_ssize_t type_sets_max;
/* Event's slots (member descriptors), set and read as `event.name = value` does. */
static PyObject *d_types, *d_payloads, *d_ended, *d_sec, *d_msec, *d_serial, *d_since, *d_records;
static PyObject *s_type_sets, *s_recent_cap, *s_popitem;
static PyObject *s_inflight, *s_recent, *s_max_inflight, *s_add_stamped,
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

/* Coalescer._complete(stamp, event, Ending.BY_KERNEL), for an event its EOE ended. */
static PyObject *complete_by_kernel(PyObject *self, PyObject *recent, PyObject *stamp,
                                    PyObject *event)
{
    PyObject *held = NULL, *types = NULL, *type_sets = NULL, *entry = NULL, *cap = NULL;
    PyObject *result = NULL;
    if (slot_set(d_ended, event, Py_True) < 0 || (held = slot_get(d_types, event)) == NULL ||
        (types = PySequence_Tuple(held)) == NULL ||
        (type_sets = PyObject_GetAttr(self, s_type_sets)) == NULL)
        goto done;
    if (!PyDict_CheckExact(type_sets)) {
        PyErr_SetString(PyExc_TypeError, "Coalescer._type_sets must be a dict");
        goto done;
    }
    PyObject *shared = PyDict_GetItemWithError(type_sets, types); /* borrowed */
    if (shared == NULL) {
        if (PyErr_Occurred())
            goto done;
        if (PyDict_GET_SIZE(type_sets) >= type_sets_max)
            PyDict_Clear(type_sets);
        if (PyDict_SetItem(type_sets, types, types) < 0)
            goto done;
        shared = types;
    }
    Py_INCREF(shared);
    int failed = slot_set(d_types, event, shared) < 0 ||
                 (entry = PyTuple_Pack(2, by_kernel, shared)) == NULL ||
                 PyObject_SetItem(recent, stamp, entry) < 0;
    Py_DECREF(shared);
    if (failed || (cap = PyObject_GetAttr(self, s_recent_cap)) == NULL)
        goto done;
    Py_ssize_t size = PyObject_Size(recent), limit = PyLong_AsSsize_t(cap);
    if (size < 0 || (limit == -1 && PyErr_Occurred()))
        goto done;
    if (size > limit) {
        PyObject *oldest = PyObject_CallMethodOneArg(recent, s_popitem, Py_False);
        if (oldest == NULL)
            goto done;
        Py_DECREF(oldest);
    }
    result = new_ref(event);
done:
    Py_XDECREF(held);
    Py_XDECREF(types);
    Py_XDECREF(type_sets);
    Py_XDECREF(entry);
    Py_XDECREF(cap);
    return result;
}

/* One record of the batch the fast way; 1 when it was not one of the fast cases (then the
 * caller hands it to _add_stamped), 0 when done, -1 on an error. `*stamp_out` is the record's
 * stamp when it was cut (NULL with *bad set when the header is malformed). */
typedef struct {
    PyObject *self, *inflight, *recent, *note, *out, *now;
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
            PyObject *event = complete_by_kernel(b->self, b->recent, stamp, pending);
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
    batch_t b = {self, NULL, NULL, NULL, NULL, now, 0};
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
    b.note = PyObject_GetAttr(self, s_note_serial);
    add_stamped = PyObject_GetAttr(self, s_add_stamped);
    seq = PySequence_Fast(records, "records must be a sequence of (type, payload)");
    b.out = PyList_New(0);
    if (b.note == NULL || add_stamped == NULL || seq == NULL ||
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
    Py_DECREF(b.note);
    return Py_BuildValue("(Nnn)", b.out, taken, errors);
error:
    Py_XDECREF(seq);
    Py_XDECREF(add_stamped);
    Py_XDECREF(cap);
    Py_XDECREF(b.inflight);
    Py_XDECREF(b.recent);
    Py_XDECREF(b.note);
    Py_XDECREF(b.out);
    return NULL;
}

/* -- routing.py: EventRouter.classify's fast path and route's loop ------------------------ */

/* What bind_routing() was given by routing.py. */
static PyObject *fast_path_fn, *path_exec, *path_address, *path_no_row, *unix_family_hex,
    *process_table, *socket_table;
static long syscall_type, sockaddr_type;
static PyObject *blocks_module; /* its BLOCK_ITEMS is read once per split (tests change it) */
static PyObject *s_block_items, *s_classify_python, *s_drop_unix_key, *s_blocks, *s_add, *s_block, *s_stamps,
    *s_open, *s_types, *s_extend;

/* The index of `wanted` in a tuple or list of record types; -1 when absent, -2 when the
 * types are not plain ints in a tuple or list (then classify_python decides). */
static Py_ssize_t type_index(PyObject *types, long wanted)
{
    if (!PyTuple_CheckExact(types) && !PyList_CheckExact(types))
        return -2;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(types);
    PyObject **items = PySequence_Fast_ITEMS(types);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyLong_CheckExact(items[i]))
            return -2;
        int overflow;
        long t = PyLong_AsLongAndOverflow(items[i], &overflow);
        if (!overflow && t == wanted)
            return i;
    }
    return -1;
}

static int has_prefix(const char *p, Py_ssize_t n, const char *prefix, Py_ssize_t len)
{
    return n >= len && memcmp(p, prefix, (size_t)len) == 0;
}

/* EventRouter.classify's fast path: 0 with *found (a new reference: (table, pid) or None)
 * when it decides, 1 when classify_python must (an event the fast path does not take), -1
 * on an error. *table_of is 0 for process_events, 1 for socket_events. */
static int classify_fast(PyObject *event, int keep_unix, PyObject **found, int *table_of)
{
    PyObject *types = NULL, *payloads = NULL, *path = NULL, *pid = NULL;
    int result = 1;
    types = slot_get(d_types, event);
    payloads = types == NULL ? NULL : slot_get(d_payloads, event);
    if (payloads == NULL) {
        result = -1;
        goto done;
    }
    Py_ssize_t index = type_index(types, syscall_type);
    if (index == -2 || !(PyList_CheckExact(payloads) || PyTuple_CheckExact(payloads)))
        goto done;
    if (index == -1) { /* neither table has a row without a SYSCALL record */
        *found = new_ref(Py_None);
        result = 0;
        goto done;
    }
    if (index >= PySequence_Fast_GET_SIZE(payloads))
        goto done;
    PyObject *record = PySequence_Fast_ITEMS(payloads)[index];
    if (!PyBytes_CheckExact(record))
        goto done;
    /* payload.split(b" ", 12): the first 12 spaces cut parts 0..11, part 12 is the rest */
    const char *p = PyBytes_AS_STRING(record);
    Py_ssize_t n = PyBytes_GET_SIZE(record), at[12], from = 0;
    for (int k = 0; k < 12; k++) {
        const char *space = memchr(p + from, ' ', (size_t)(n - from));
        if (space == NULL)
            goto done;
        at[k] = space - p;
        from = at[k] + 1;
    }
#define PART(k) (p + at[(k) - 1] + 1), (at[k] - at[(k) - 1] - 1)
    if (!has_prefix(PART(1), "arch=", 5) || !has_prefix(PART(2), "syscall=", 8) ||
        !has_prefix(PART(3), "success=", 8) || !has_prefix(PART(11), "pid=", 4))
        goto done;
    PyObject *arch = PyBytes_FromStringAndSize(PART(1));
    PyObject *nr = arch == NULL ? NULL : PyBytes_FromStringAndSize(PART(2));
    if (nr != NULL)
        path = PyObject_CallFunctionObjArgs(fast_path_fn, arch, nr, NULL);
    Py_XDECREF(arch);
    Py_XDECREF(nr);
    if (path == NULL) {
        result = -1;
        goto done;
    }
    if (path == path_no_row) {
        *found = new_ref(Py_None);
        result = 0;
        goto done;
    }
    /* int(parts[11][4:]): plain digits here, anything else by int() */
    const char *digits_at = p + at[10] + 5;
    Py_ssize_t digits_n = at[11] - at[10] - 5;
    if (digits_n > 0 && digits_n <= MAX_DIGITS && digits(digits_at, digits_n))
        pid = PyLong_FromLongLong(decimal(digits_at, digits_n));
    else {
        PyObject *text = PyBytes_FromStringAndSize(digits_at, digits_n);
        pid = text == NULL ? NULL : PyNumber_Long(text);
        Py_XDECREF(text);
        if (pid == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
                result = -1;
                goto done;
            }
            PyErr_Clear();
            goto done; /* not a number: build the row */
        }
    }
    if (pid == NULL) {
        result = -1;
        goto done;
    }
    if (path == path_exec) { /* failed execs give no row (as in osquery) */
        const char *success = p + at[2] + 1;
        Py_ssize_t success_n = at[3] - at[2] - 1;
        *found = (success_n == 11 && memcmp(success, "success=yes", 11) == 0)
                     ? PyTuple_Pack(2, process_table, pid)
                     : new_ref(Py_None);
        *table_of = 0;
        result = *found == NULL ? -1 : 0;
        goto done;
    }
    if (path != path_address)
        goto done;
    index = type_index(types, sockaddr_type);
    if (index == -1) { /* connect/bind without an address: not from a socket rule */
        *found = new_ref(Py_None);
        result = 0;
        goto done;
    }
    if (index < 0 || index >= PySequence_Fast_GET_SIZE(payloads))
        goto done;
    PyObject *sockaddr = PySequence_Fast_ITEMS(payloads)[index];
    if (!PyBytes_CheckExact(sockaddr))
        goto done;
    int keep = keep_unix;
    if (!keep) {
        const char *s = PyBytes_AS_STRING(sockaddr);
        Py_ssize_t sn = PyBytes_GET_SIZE(sockaddr), found_at = -1;
        for (int pass = 0; pass < 2 && found_at < 0; pass++) {
            const char *needle = pass == 0 ? " saddr=" : ":saddr=";
            for (Py_ssize_t i = 0; i + 7 <= sn; i++) {
                const char *hit = memchr(s + i, needle[0], (size_t)(sn - 6 - i));
                if (hit == NULL)
                    break;
                i = hit - s;
                if (memcmp(hit, needle, 7) == 0) {
                    found_at = i;
                    break;
                }
            }
        }
        if (found_at >= 0) {
            Py_ssize_t start = found_at + 7 < sn ? found_at + 7 : sn;
            Py_ssize_t stop = found_at + 11 < sn ? found_at + 11 : sn;
            keep = 1;
            Py_ssize_t hexes = PyTuple_GET_SIZE(unix_family_hex);
            for (Py_ssize_t h = 0; h < hexes; h++) {
                PyObject *hex = PyTuple_GET_ITEM(unix_family_hex, h);
                if (PyBytes_GET_SIZE(hex) == stop - start &&
                    memcmp(PyBytes_AS_STRING(hex), s + start, (size_t)(stop - start)) == 0)
                    keep = 0;
            }
        }
    }
    if (keep) {
        *found = PyTuple_Pack(2, socket_table, pid);
        *table_of = 1;
        result = *found == NULL ? -1 : 0;
    }
#undef PART
done:
    Py_XDECREF(types);
    Py_XDECREF(payloads);
    Py_XDECREF(path);
    Py_XDECREF(pid);
    return result;
}

/* (table, pid) of an event, or None: the fast path here, else router.classify_python. */
static PyObject *classify_one(PyObject *router, PyObject *event, int keep_unix, int *table_of)
{
    PyObject *found = NULL;
    int decided = classify_fast(event, keep_unix, &found, table_of);
    if (decided < 0)
        return NULL;
    if (decided == 0)
        return found;
    found = PyObject_CallMethodOneArg(router, s_classify_python, event);
    if (found == NULL || found == Py_None)
        return found;
    if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2) {
        PyErr_SetString(PyExc_TypeError, "classify_python must give (table, pid) or None");
        Py_DECREF(found);
        return NULL;
    }
    int process = PyObject_RichCompareBool(PyTuple_GET_ITEM(found, 0), process_table, Py_EQ);
    if (process < 0) {
        Py_DECREF(found);
        return NULL;
    }
    *table_of = process ? 0 : 1;
    return found;
}

static int keep_unix_of(PyObject *router)
{
    PyObject *key = PyObject_GetAttr(router, s_drop_unix_key);
    if (key == NULL)
        return -1;
    int keep = key == Py_None;
    Py_DECREF(key);
    return keep;
}

/* classify(router, event): EventRouter.classify_python(event)'s result. */
static PyObject *classify(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "classify(router, event)");
        return NULL;
    }
    if (fast_path_fn == NULL || event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_ingestfast.bind_routing was not called");
        return NULL;
    }
    int keep = keep_unix_of(args[0]), table_of = 0;
    if (keep < 0)
        return NULL;
    return classify_one(args[0], args[1], keep, &table_of);
}

/* BlockWriter.add(types, payloads, stamp) -> (block, index): Block.add's appends here while
 * the item does not fill the open block (BLOCK_ITEMS - 1 of every BLOCK_ITEMS), the one that
 * fills it (and seals it) by the writer's own add. */
static PyObject *block_add(PyObject *writer, PyObject *add, Py_ssize_t block_items,
                           PyObject *types, PyObject *payloads, PyObject *stamp)
{
    PyObject *block = PyObject_GetAttr(writer, s_block), *open = NULL, *held = NULL,
             *stamps = NULL, *item = NULL;
    if (block == NULL)
        return NULL;
    if ((open = PyObject_GetAttr(block, s_open)) == NULL ||
        (held = PyObject_GetAttr(block, s_types)) == NULL ||
        (stamps = PyObject_GetAttr(block, s_stamps)) == NULL)
        goto done;
    if (!PyList_CheckExact(open) || !PyList_CheckExact(held) ||
        PyList_GET_SIZE(held) + 1 >= block_items) {
        item = PyObject_CallFunctionObjArgs(add, types, payloads, stamp, NULL);
        goto done;
    }
    PyObject *none = PyObject_CallMethodOneArg(stamps, s_extend, stamp);
    if (none == NULL)
        goto done;
    Py_DECREF(none);
    if (PyList_Append(open, payloads) < 0 || PyList_Append(held, types) < 0)
        goto done;
    PyObject *index = PyLong_FromSsize_t(PyList_GET_SIZE(open) - 1);
    if (index != NULL) {
        item = PyTuple_Pack(2, block, index);
        Py_DECREF(index);
    }
done:
    Py_DECREF(block);
    Py_XDECREF(open);
    Py_XDECREF(held);
    Py_XDECREF(stamps);
    return item;
}

/* split(router, events) -> (process, process_events, sockets, socket_events): each event
 * that gives a row classified and added to its table's open block (BlockWriter.add), as
 * EventRouter.split_python gives them for a router with no other tables. */
static PyObject *split(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "split(router, events)");
        return NULL;
    }
    if (fast_path_fn == NULL || event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_ingestfast.bind_routing was not called");
        return NULL;
    }
    PyObject *router = args[0], *seq = NULL, *blocks = NULL, *writers[2] = {NULL, NULL},
             *adds[2] = {NULL, NULL},
             *entries[2] = {NULL, NULL}, *routed[2] = {NULL, NULL};
    int keep = keep_unix_of(router);
    if (keep < 0)
        return NULL;
    blocks = PyObject_GetAttr(router, s_blocks);
    if (blocks == NULL)
        goto error;
    PyObject *tables[2] = {process_table, socket_table};
    for (int k = 0; k < 2; k++) {
        PyObject *writer = writers[k] = PyObject_GetItem(blocks, tables[k]);
        if (writer == NULL)
            goto error;
        adds[k] = PyObject_GetAttr(writer, s_add);
        entries[k] = PyList_New(0);
        routed[k] = PyList_New(0);
        if (adds[k] == NULL || entries[k] == NULL || routed[k] == NULL)
            goto error;
    }
    PyObject *items_obj = PyObject_GetAttr(blocks_module, s_block_items);
    if (items_obj == NULL)
        goto error;
    Py_ssize_t block_items = PyLong_AsSsize_t(items_obj);
    Py_DECREF(items_obj);
    if (block_items == -1 && PyErr_Occurred())
        goto error;
    seq = PySequence_Fast(args[1], "events must be a sequence");
    if (seq == NULL)
        goto error;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **events = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *event = events[i];
        int table_of = 0;
        PyObject *found = classify_one(router, event, keep, &table_of);
        if (found == NULL)
            goto error;
        if (found == Py_None) {
            Py_DECREF(found);
            continue;
        }
        PyObject *sec = slot_get(d_sec, event), *msec = NULL, *serial = NULL, *types = NULL,
                 *payloads = NULL, *stamp = NULL, *item = NULL, *entry = NULL;
        int failed = 1;
        if (sec != NULL && (msec = slot_get(d_msec, event)) != NULL &&
            (serial = slot_get(d_serial, event)) != NULL &&
            (types = slot_get(d_types, event)) != NULL &&
            (payloads = slot_get(d_payloads, event)) != NULL &&
            (stamp = PyTuple_Pack(3, sec, msec, serial)) != NULL &&
            (item = block_add(writers[table_of], adds[table_of], block_items, types, payloads,
                              stamp)) != NULL &&
            (entry = PyTuple_Pack(3, sec, PyTuple_GET_ITEM(found, 1), item)) != NULL &&
            PyList_Append(entries[table_of], entry) == 0 &&
            PyList_Append(routed[table_of], event) == 0)
            failed = 0;
        Py_DECREF(found);
        Py_XDECREF(sec);
        Py_XDECREF(msec);
        Py_XDECREF(serial);
        Py_XDECREF(types);
        Py_XDECREF(payloads);
        Py_XDECREF(stamp);
        Py_XDECREF(item);
        Py_XDECREF(entry);
        if (failed)
            goto error;
    }
    Py_DECREF(seq);
    Py_DECREF(blocks);
    for (int k = 0; k < 2; k++) {
        Py_DECREF(writers[k]);
        Py_DECREF(adds[k]);
    }
    return Py_BuildValue("(NNNN)", entries[0], routed[0], entries[1], routed[1]);
error:
    Py_XDECREF(seq);
    Py_XDECREF(blocks);
    for (int k = 0; k < 2; k++) {
        Py_XDECREF(writers[k]);
        Py_XDECREF(adds[k]);
        Py_XDECREF(entries[k]);
        Py_XDECREF(routed[k]);
    }
    return NULL;
}

/* bind_routing(fast_path, EXEC, ADDRESS, NO_ROW, unix_family_hex, process_table,
 *              socket_table, syscall_type, sockaddr_type, blocks_module) */
static PyObject *bind_routing(PyObject *module, PyObject *args)
{
    PyObject *fn, *exec_, *address, *no_row, *hexes, *process, *socket;
    long syscall, sockaddr;
    PyObject *module_of_blocks;
    if (!PyArg_ParseTuple(args, "OOOOO!UUllO:bind_routing", &fn, &exec_, &address, &no_row,
                          &PyTuple_Type, &hexes, &process, &socket, &syscall, &sockaddr,
                          &module_of_blocks))
        return NULL;
    for (Py_ssize_t h = 0; h < PyTuple_GET_SIZE(hexes); h++)
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(hexes, h))) {
            PyErr_SetString(PyExc_TypeError, "unix_family_hex must hold bytes");
            return NULL;
        }
    Py_XSETREF(fast_path_fn, new_ref(fn));
    Py_XSETREF(path_exec, new_ref(exec_));
    Py_XSETREF(path_address, new_ref(address));
    Py_XSETREF(path_no_row, new_ref(no_row));
    Py_XSETREF(unix_family_hex, new_ref(hexes));
    Py_XSETREF(process_table, new_ref(process));
    Py_XSETREF(socket_table, new_ref(socket));
    syscall_type = syscall;
    sockaddr_type = sockaddr;
    Py_XSETREF(blocks_module, new_ref(module_of_blocks));
    Py_RETURN_NONE;
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
 *      first_user_msg, replace, eoe, last_daemon, kernel, serial_mask, type_sets_max) */
static PyObject *bind(PyObject *module, PyObject *args)
{
    PyObject *event, *ending, *error, *below;
    long first, replace, eoe, daemon, kernel;
    unsigned long long mask;
    Py_ssize_t shapes;
    if (!PyArg_ParseTuple(args, "O!OOO!lllllKn:bind", &PyType_Type, &event, &ending, &error,
                          &PyFrozenSet_Type, &below, &first, &replace, &eoe, &daemon, &kernel,
                          &mask, &shapes))
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
    type_sets_max = shapes;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"add_batch", (PyCFunction)(void (*)(void))add_batch, METH_FASTCALL,
     "add_batch(coalescer, records, now): Coalescer.add_batch_python's result, its common "
     "cases in C."},
    {"bind", bind, METH_VARARGS,
     "bind(Event, by_kernel, RecordParseError, below, first_user_msg, replace, eoe, "
     "last_daemon, kernel, serial_mask, type_sets_max): what add_batch takes from "
     "coalesce.py."},
    {"classify", (PyCFunction)(void (*)(void))classify, METH_FASTCALL,
     "classify(router, event): EventRouter.classify_python's result, its fast path in C."},
    {"split", (PyCFunction)(void (*)(void))split, METH_FASTCALL,
     "split(router, events): EventRouter.split_python's result for a router with no other "
     "tables."},
    {"bind_routing", bind_routing, METH_VARARGS,
     "bind_routing(fast_path, EXEC, ADDRESS, NO_ROW, unix_family_hex, process_table, "
     "socket_table, syscall_type, sockaddr_type, blocks): what classify and split take "
     "from routing.py."},
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
        {&s_type_sets, "_type_sets"},
        {&s_recent_cap, "_recent_cap"},
        {&s_popitem, "popitem"},
        {&s_inflight, "_inflight"},
        {&s_recent, "_recent"},
        {&s_max_inflight, "max_inflight"},
        {&s_add_stamped, "_add_stamped"},
        {&s_note_serial, "_note_serial"},
        {&s_high_serial, "_high_serial"},
        {&s_missing_order, "_missing_order"},
        {&s_add_batch_python, "add_batch_python"},
        {&s_classify_python, "classify_python"},
        {&s_drop_unix_key, "drop_unix_key"},
        {&s_blocks, "_blocks"},
        {&s_add, "add"},
        {&s_block_items, "BLOCK_ITEMS"},
        {&s_block, "block"},
        {&s_stamps, "stamps"},
        {&s_open, "open"},
        {&s_types, "types"},
        {&s_extend, "extend"},
    };
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        *names[k].slot = PyUnicode_InternFromString(names[k].text);
        if (*names[k].slot == NULL)
            return NULL;
    }
    return PyModule_Create(&module_def);
}
