/* The rows of a large Thrift reply, encoded straight from the rows as they are and sent in
 * pieces (sdk/answer.py): the core's answer to a `query` call from SQLite's result tuples
 * (core/answer.py), and an extension's reply to a generate call from its table's rows
 * (sdk/runtime.py), each without thrift encoding the whole reply before its first byte goes.
 *
 * Optional: answer.py uses this module when it imports (scripts/build_accel.py compiles it in
 * place at `make install`); without it the replies go through the generated Processors with
 * rows as dicts, which write the same bytes (tests/core/test_answer.py, tests/sdk/test_answer.py).
 *
 * Each row is written as the thrift binary protocol writes the dict {column: text} that
 * core/sql.py's _statement_rows makes of it: a map<string,string> header (the two type bytes
 * the caller gives, then the number of distinct columns), then each distinct column name at
 * the position of its first occurrence with the text of its last one (a dict's semantics,
 * `SELECT 1 AS a, 2 AS a` is {"a": "2"}). A cell's text is sdk/values.py's result_text: a str
 * as it is, None as nullvalue, an int (not a bool) in decimal, anything else as_text(value).
 * Strings are an i32 big-endian length and their UTF-8 bytes.
 *
 * fits(statements) -> bool
 *   statements: a list of (rows, columns) pairs, rows a list of tuples (or dicts) and columns
 *   a list of str. True when every column name is a str and every row is a tuple as wide as
 *   its statement's columns, or a dict of str values whose keys are the columns in order:
 *   what write_maps can write.
 *
 * write_maps(statements, map_types, nullvalue, as_text, write, chunk) -> int
 *   Every row of every statement, in order, as one map each; the bytes go to write(bytes)
 *   in pieces of about `chunk` bytes (the last one shorter), so that a reader can decode the
 *   first rows while the later ones are encoded. map_types: the map header's key and value
 *   type bytes (2 bytes). Returns the number of rows written. A row that does not fit raises
 *   ValueError (fits() first keeps that from happening after a piece was written).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char *data;
    Py_ssize_t size, capacity, chunk;
    PyObject *write; /* borrowed */
} out_t;

static int reserve(out_t *out, Py_ssize_t more)
{
    if (out->size + more <= out->capacity)
        return 0;
    Py_ssize_t capacity = out->capacity ? out->capacity : 4096;
    while (capacity < out->size + more) {
        if (capacity > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        capacity *= 2;
    }
    char *data = PyMem_Realloc(out->data, (size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->data = data;
    out->capacity = capacity;
    return 0;
}

static int put(out_t *out, const void *bytes, Py_ssize_t n)
{
    if (reserve(out, n) < 0)
        return -1;
    memcpy(out->data + out->size, bytes, (size_t)n);
    out->size += n;
    return 0;
}

static int put_i32(out_t *out, Py_ssize_t value)
{
    if (value > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a string or map longer than 2**31-1");
        return -1;
    }
    uint32_t v = (uint32_t)value;
    unsigned char be[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v};
    return put(out, be, 4);
}

static int put_string(out_t *out, const char *text, Py_ssize_t n)
{
    if (put_i32(out, n) < 0)
        return -1;
    return put(out, text, n);
}

static int put_str(out_t *out, PyObject *text)
{
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    return utf8 == NULL ? -1 : put_string(out, utf8, n);
}

/* Hand what is buffered to write(); the buffer is reused. */
static int flush(out_t *out)
{
    if (out->size == 0)
        return 0;
    PyObject *piece = PyBytes_FromStringAndSize(out->data, out->size);
    if (piece == NULL)
        return -1;
    out->size = 0;
    PyObject *done = PyObject_CallOneArg(out->write, piece);
    Py_DECREF(piece);
    if (done == NULL)
        return -1;
    Py_DECREF(done);
    return 0;
}

/* One cell's text (result_text's rules, as _sqlfast.text_rows gives it). */
static int put_cell(out_t *out, PyObject *value, PyObject *null, PyObject *as_text)
{
    if (PyUnicode_CheckExact(value))
        return put_str(out, value);
    if (value == Py_None)
        return put_str(out, null);
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (number == -1 && PyErr_Occurred())
            return -1;
        if (!overflow) {
            char digits[32];
            int n = snprintf(digits, sizeof digits, "%lld", number);
            return put_string(out, digits, n);
        }
    }
    PyObject *text = PyLong_CheckExact(value) ? PyObject_Str(value)
                                               : PyObject_CallOneArg(as_text, value);
    if (text == NULL)
        return -1;
    int failed = -1;
    if (!PyUnicode_Check(text))
        PyErr_Format(PyExc_TypeError, "as_text returned %.100s, not str", Py_TYPE(text)->tp_name);
    else
        failed = put_str(out, text);
    Py_DECREF(text);
    return failed;
}

/* Whether a row that is a dict holds exactly `width` keys, equal to columns[0..width) in that
 * order, each value a str: the map thrift writes of it is then the one write_statement
 * writes (a dict has no repeated key). */
static int dict_fits(PyObject *row, PyObject *columns, Py_ssize_t width)
{
    if (PyDict_GET_SIZE(row) != width)
        return 0;
    Py_ssize_t at = 0, k = 0;
    PyObject *key, *value;
    while (PyDict_Next(row, &at, &key, &value)) {
        PyObject *name = PyList_GET_ITEM(columns, k++);
        if (key != name) {
            int same = PyUnicode_Check(key) ? PyObject_RichCompareBool(key, name, Py_EQ) : 0;
            if (same <= 0)
                return same;
        }
        if (!PyUnicode_Check(value))
            return 0;
    }
    return 1;
}

/* The pair at `index` of `statements` as rows and columns, or 0 with no exception set. */
static int statement(PyObject *statements, Py_ssize_t index, PyObject **rows, PyObject **columns)
{
    PyObject *pair = PyList_GET_ITEM(statements, index);
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2)
        return 0;
    *rows = PyTuple_GET_ITEM(pair, 0);
    *columns = PyTuple_GET_ITEM(pair, 1);
    return PyList_Check(*rows) && PyList_Check(*columns);
}

static int statement_fits(PyObject *rows, PyObject *columns)
{
    Py_ssize_t width = PyList_GET_SIZE(columns);
    for (Py_ssize_t c = 0; c < width; c++)
        if (!PyUnicode_Check(PyList_GET_ITEM(columns, c)))
            return 0;
    for (Py_ssize_t r = 0; r < PyList_GET_SIZE(rows); r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (PyDict_CheckExact(row)) {
            int fits = dict_fits(row, columns, width);
            if (fits <= 0)
                return fits;
        }
        else if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != width)
            return 0;
    }
    return 1;
}

static PyObject *fits(PyObject *module, PyObject *statements)
{
    (void)module;
    if (!PyList_Check(statements))
        Py_RETURN_FALSE;
    for (Py_ssize_t s = 0; s < PyList_GET_SIZE(statements); s++) {
        PyObject *rows, *columns;
        if (!statement(statements, s, &rows, &columns))
            Py_RETURN_FALSE;
        int fit = statement_fits(rows, columns);
        if (fit < 0)
            return NULL;
        if (!fit)
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

/* The distinct names of `columns` in order of first occurrence (keys[0..*count)), each with
 * the position of its last occurrence (last[]): the dict {column: value} a row makes. */
static int distinct_columns(PyObject *columns, PyObject **keys, Py_ssize_t *last, Py_ssize_t *count)
{
    Py_ssize_t width = PyList_GET_SIZE(columns);
    *count = 0;
    for (Py_ssize_t c = 0; c < width; c++) {
        PyObject *name = PyList_GET_ITEM(columns, c);
        Py_ssize_t k = 0;
        for (; k < *count; k++) {
            int same = PyObject_RichCompareBool(keys[k], name, Py_EQ);
            if (same < 0)
                return -1;
            if (same)
                break;
        }
        if (k == *count) {
            keys[k] = name;
            (*count)++;
        }
        last[k] = c;
    }
    return 0;
}

static int write_statement(out_t *out, PyObject *rows, PyObject *columns, const char *map_types,
                           PyObject *null, PyObject *as_text)
{
    Py_ssize_t width = PyList_GET_SIZE(columns), count = 0;
    size_t slots = (size_t)width + 1;
    PyObject **keys = PyMem_Calloc(slots, sizeof(PyObject *));
    Py_ssize_t *last = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    Py_ssize_t *start = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    out_t names = {0}; /* every distinct key's encoded bytes, keys[k] at start[k] */
    int failed = -1;
    if (keys == NULL || last == NULL || start == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (distinct_columns(columns, keys, last, &count) < 0)
        goto done;
    for (Py_ssize_t k = 0; k < count; k++) {
        start[k] = names.size;
        if (put_str(&names, keys[k]) < 0)
            goto done;
    }
    start[count] = names.size;
    for (Py_ssize_t r = 0; r < PyList_GET_SIZE(rows); r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (PyDict_CheckExact(row)) {
            if (count != width || dict_fits(row, columns, width) != 1) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "a row's keys are not its columns");
                goto done;
            }
            if (put(out, map_types, 2) < 0 || put_i32(out, count) < 0)
                goto done;
            Py_ssize_t at = 0, k = 0;
            PyObject *key, *value;
            while (PyDict_Next(row, &at, &key, &value)) {
                if (put(out, names.data + start[k], start[k + 1] - start[k]) < 0 ||
                    put_str(out, value) < 0)
                    goto done;
                k++;
            }
            if (out->size >= out->chunk && flush(out) < 0)
                goto done;
            continue;
        }
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != width) {
            PyErr_SetString(PyExc_ValueError, "a result row is not as wide as its columns");
            goto done;
        }
        if (put(out, map_types, 2) < 0 || put_i32(out, count) < 0)
            goto done;
        Py_INCREF(row); /* as_text is Python code: the row stays alive whatever it does */
        for (Py_ssize_t k = 0; k < count; k++)
            if (put(out, names.data + start[k], start[k + 1] - start[k]) < 0 ||
                put_cell(out, PyTuple_GET_ITEM(row, last[k]), null, as_text) < 0) {
                Py_DECREF(row);
                goto done;
            }
        Py_DECREF(row);
        if (out->size >= out->chunk && flush(out) < 0)
            goto done;
    }
    failed = 0;
done:
    PyMem_Free(names.data);
    PyMem_Free(keys);
    PyMem_Free(last);
    PyMem_Free(start);
    return failed;
}

static PyObject *write_maps(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6 || !PyList_Check(args[0]) || !PyBytes_Check(args[1]) ||
        PyBytes_GET_SIZE(args[1]) != 2 || !PyUnicode_Check(args[2]) || !PyLong_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "write_maps(statements: list, map_types: bytes(2), nullvalue: str, "
                        "as_text, write, chunk: int)");
        return NULL;
    }
    PyObject *statements = args[0], *null = args[2], *as_text = args[3];
    const char *map_types = PyBytes_AS_STRING(args[1]);
    out_t out = {0};
    out.write = args[4];
    out.chunk = PyLong_AsSsize_t(args[5]);
    if (out.chunk == -1 && PyErr_Occurred())
        return NULL;
    if (out.chunk < 1)
        out.chunk = 1;
    Py_ssize_t written = 0;
    for (Py_ssize_t s = 0; s < PyList_GET_SIZE(statements); s++) {
        PyObject *rows, *columns;
        if (!statement(statements, s, &rows, &columns)) {
            PyErr_SetString(PyExc_ValueError, "a statement is not a (rows, columns) pair of lists");
            goto fail;
        }
        Py_INCREF(rows);
        Py_INCREF(columns);
        int failed = write_statement(&out, rows, columns, map_types, null, as_text);
        written += PyList_GET_SIZE(rows);
        Py_DECREF(rows);
        Py_DECREF(columns);
        if (failed)
            goto fail;
    }
    if (flush(&out) < 0)
        goto fail;
    PyMem_Free(out.data);
    return PyLong_FromSsize_t(written);
fail:
    PyMem_Free(out.data);
    return NULL;
}

static PyMethodDef methods[] = {
    {"fits", fits, METH_O, "fits(statements): whether write_maps can write every row."},
    {"write_maps", (PyCFunction)(void (*)(void))write_maps, METH_FASTCALL,
     "write_maps(statements, map_types, nullvalue, as_text, write, chunk): every row as a "
     "thrift binary map<string,string>, in pieces to write()."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_answerfast", "Large Thrift replies encoded from their rows in pieces.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__answerfast(void) { return PyModule_Create(&module_def); }
