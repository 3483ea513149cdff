# IPython start-up file of the local sandbox's kernels: the rich formats E2B's code-interpreter
# template adds. `e2b/data` carries a pandas DataFrame as columns, `e2b/chart` the data behind a
# simple matplotlib figure. Both register by type name, so neither library is imported here.
def _e2b_register_formats():
    from IPython import get_ipython
    from IPython.core.formatters import BaseFormatter
    from traitlets import ObjectName, Unicode

    ip = get_ipython()
    if ip is None or not hasattr(ip, "display_formatter"):
        return

    # Both formatters recognise their type by name instead of registering for it: that keeps
    # pandas and matplotlib unimported, and matplotlib_inline pops Figure from every
    # formatter's registry when it activates.
    class _DataFormatter(BaseFormatter):
        format_type = Unicode("e2b/data")
        print_method = ObjectName("_repr_e2b_data_")
        _return_type = (dict,)

        def __call__(self, obj):
            cls = type(obj)
            if cls.__name__ != "DataFrame" or cls.__module__.split(".")[0] != "pandas":
                return None
            try:
                return dataframe(obj)
            except Exception:
                return None

    class _ChartFormatter(BaseFormatter):
        format_type = Unicode("e2b/chart")
        print_method = ObjectName("_repr_e2b_chart_")
        _return_type = (dict,)

        def __call__(self, obj):
            cls = type(obj)
            if cls.__name__ != "Figure" or cls.__module__ != "matplotlib.figure":
                return None
            try:
                return figure(obj)
            except Exception:
                return None

    def dataframe(df):
        import json
        # Through pandas' own JSON writer, so numpy scalars, NaN and timestamps serialise.
        return {
            str(c): json.loads(df[c].to_json(orient="values", date_format="iso"))
            for c in df.columns
        }

    def _num(v):
        try:
            return float(v)
        except Exception:
            return str(v)

    def figure(fig):
        axes = fig.get_axes()
        if len(axes) != 1:
            return None
        ax = axes[0]
        chart = {
            "title": ax.get_title() or (fig._suptitle.get_text() if fig._suptitle else None),
            "x_label": ax.get_xlabel() or None,
            "y_label": ax.get_ylabel() or None,
        }
        bars = [p for p in ax.patches if p.__class__.__name__ == "Rectangle"]
        if bars:
            labels = [t.get_text() for t in ax.get_xticklabels()]
            chart["type"] = "bar"
            chart["elements"] = [
                {"label": labels[i] if i < len(labels) and labels[i] else str(round(b.get_x() + b.get_width() / 2, 6)),
                 "value": _num(b.get_height())}
                for i, b in enumerate(bars)
            ]
            return chart
        lines = ax.get_lines()
        if lines:
            chart["type"] = "line"
            chart["elements"] = [
                {"label": line.get_label(),
                 "points": [[_num(x), _num(y)] for x, y in zip(line.get_xdata(), line.get_ydata())]}
                for line in lines
            ]
            return chart
        if ax.collections:
            chart["type"] = "scatter"
            chart["elements"] = [
                {"label": c.get_label(), "points": [[_num(x), _num(y)] for x, y in c.get_offsets()]}
                for c in ax.collections
            ]
            return chart
        return None

    df_fmt = _DataFormatter(parent=ip.display_formatter)
    chart_fmt = _ChartFormatter(parent=ip.display_formatter)
    ip.display_formatter.formatters["e2b/data"] = df_fmt
    ip.display_formatter.formatters["e2b/chart"] = chart_fmt
    active = ip.display_formatter.active_types
    for mime in ("e2b/data", "e2b/chart"):
        if mime not in active:
            active.append(mime)


try:
    _e2b_register_formats()
except Exception as _e2b_error:  # rich extras must never break a kernel
    import sys
    print(f"e2b-blocking: rich formats unavailable: {_e2b_error}", file=sys.stderr)
del _e2b_register_formats
