/* Compiled fast paths of core/sql.py's _converted and _statement_rows.
 *
 * Optional: sql.py uses this module when it imports (scripts/build_accel.py compiles it in
 * place at `make install`) and its own C-builtin loops otherwise; the same tests run on both
 * (tests/core/test_sql_fast.py). The values' rules stay in sdk/values.py: this file turns a
 * plain decimal into an int (what every extension sends for a number) and a str, an int or
 * None into its text, and calls back into Python for every other value.
 *
 * typed_rows(rows, columns) -> list of tuples, or None
 *   rows: the extension's rows (dicts of str). columns: one (key, low, high, convert) per
 *   table column: key None for a column the query does not use (its value None); convert
 *   None for TEXT/BLOB (the value as it is); else low/high the range in which a plain
 *   decimal (-?(0|[1-9][0-9]*), ASCII) is the column's value as int (None: never), and
 *   convert(text) the column's value for any other text. Each tuple is the row's values in
 *   column order (a key the row lacks reads as "", as osquery's core reads it), then the
 *   row's position. None when a row is not a dict: sql.py's careful path then reads it.
 *
 * text_rows(rows, columns, nullvalue, as_text) -> list of dicts, or None
 *   rows: SQLite's result tuples; each becomes {column: text}: a str as it is, None as
 *   nullvalue, an int (not a bool) in decimal, anything else as_text(value). None when a
 *   row's width is not len(columns).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* A plain decimal's value in [low, high]: 1 and *out set, else 0. */
static int plain_decimal(PyObject *text, long long low, long long high, long long *out)
{
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const char *s = (const char *)PyUnicode_1BYTE_DATA(text);
    Py_ssize_t i = 0;
    int negative = n > 0 && s[0] == '-';
    i = negative;
    Py_ssize_t digits = n - i;
    if (digits < 1 || digits > 18 || (s[i] == '0' && digits > 1))
        return 0;
    long long value = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        value = value * 10 + (s[i] - '0');
    }
    if (negative)
        value = -value;
    if (value < low || value > high)
        return 0;
    *out = value;
    return 1;
}

typedef struct {
    PyObject *key;     /* borrowed; NULL: not used */
    PyObject *convert; /* borrowed; NULL: as it is */
    int ranged;
    long long low, high;
} column_t;

static PyObject *typed_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "typed_rows(rows: list, columns: list)");
        return NULL;
    }
    PyObject *rows = args[0], *spec = args[1];
    Py_ssize_t width = PyList_GET_SIZE(spec), count = PyList_GET_SIZE(rows);
    column_t *columns = PyMem_Calloc((size_t)(width ? width : 1), sizeof(column_t));
    if (columns == NULL)
        return PyErr_NoMemory();
    PyObject *out = NULL, *empty = NULL;
    for (Py_ssize_t c = 0; c < width; c++) {
        PyObject *item = PyList_GET_ITEM(spec, c), *key, *low, *high, *convert;
        if (!PyArg_ParseTuple(item, "OOOO", &key, &low, &high, &convert))
            goto done;
        columns[c].key = key == Py_None ? NULL : key;
        columns[c].convert = convert == Py_None ? NULL : convert;
        columns[c].ranged = low != Py_None && high != Py_None;
        if (columns[c].ranged) {
            columns[c].low = PyLong_AsLongLong(low);
            columns[c].high = PyLong_AsLongLong(high);
            if (PyErr_Occurred())
                goto done;
        }
    }
    empty = PyUnicode_FromStringAndSize("", 0);
    out = empty == NULL ? NULL : PyList_New(count);
    if (out == NULL)
        goto done;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyDict_Check(row)) {
            Py_CLEAR(out);
            out = Py_None;
            Py_INCREF(out);
            goto done;
        }
        PyObject *values = PyTuple_New(width + 1);
        if (values == NULL)
            goto fail;
        PyList_SET_ITEM(out, r, values);
        for (Py_ssize_t c = 0; c < width; c++) {
            const column_t *column = &columns[c];
            PyObject *value;
            if (column->key == NULL) {
                Py_INCREF(Py_None);
                PyTuple_SET_ITEM(values, c, Py_None);
                continue;
            }
            PyObject *text = PyDict_GetItemWithError(row, column->key);
            long long number;
            if (text == NULL) {
                if (PyErr_Occurred())
                    goto fail;
                text = empty; /* a key missing reads as "", as in _careful_rows */
            }
            if (column->convert == NULL) {
                Py_INCREF(text);
                value = text;
            }
            else if (column->ranged && plain_decimal(text, column->low, column->high, &number))
                value = PyLong_FromLongLong(number);
            else
                value = PyObject_CallOneArg(column->convert, text);
            if (value == NULL)
                goto fail;
            PyTuple_SET_ITEM(values, c, value);
        }
        PyObject *position = PyLong_FromSsize_t(r);
        if (position == NULL)
            goto fail;
        PyTuple_SET_ITEM(values, width, position);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    Py_XDECREF(empty);
    PyMem_Free(columns);
    return out;
}

static PyObject *text_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4 || !PyList_Check(args[0]) || !PyList_Check(args[1]) ||
        !PyUnicode_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "text_rows(rows: list, columns: list, nullvalue, as_text)");
        return NULL;
    }
    PyObject *rows = args[0], *columns = args[1], *null = args[2], *as_text = args[3];
    Py_ssize_t width = PyList_GET_SIZE(columns), count = PyList_GET_SIZE(rows);
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != width)
            Py_RETURN_NONE;
    }
    PyObject *out = PyList_New(count);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        PyObject *texts = PyDict_New();
        if (texts == NULL)
            goto fail;
        PyList_SET_ITEM(out, r, texts);
        for (Py_ssize_t c = 0; c < width; c++) {
            PyObject *value = PyTuple_GET_ITEM(row, c), *text;
            if (PyUnicode_CheckExact(value)) {
                Py_INCREF(value);
                text = value;
            }
            else if (value == Py_None) {
                Py_INCREF(null);
                text = null;
            }
            else if (PyLong_CheckExact(value))
                text = PyObject_Str(value);
            else
                text = PyObject_CallOneArg(as_text, value);
            if (text == NULL)
                goto fail;
            int failed = PyDict_SetItem(texts, PyList_GET_ITEM(columns, c), text);
            Py_DECREF(text);
            if (failed)
                goto fail;
        }
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"typed_rows", (PyCFunction)(void (*)(void))typed_rows, METH_FASTCALL,
     "typed_rows(rows, columns): each extension row as a tuple of column values, or None."},
    {"text_rows", (PyCFunction)(void (*)(void))text_rows, METH_FASTCALL,
     "text_rows(rows, columns, nullvalue, as_text): each result row as {column: text}."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_sqlfast", "Compiled fast paths of core/sql.py.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sqlfast(void) { return PyModule_Create(&module_def); }
