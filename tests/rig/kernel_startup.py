# IPython start-up of the rig's kernels: the display formats E2B's template adds (facts from
# e2b-dev/code-interpreter template/startup_scripts): `e2b/data` for a pandas DataFrame
# (to_dict(orient="list")) and `e2b/chart` for a matplotlib figure (E2B's e2b_charts package).
import sys

from IPython import get_ipython
from IPython.core.formatters import BaseFormatter
from traitlets import ObjectName, Unicode


class _E2bData(BaseFormatter):
    format_type = Unicode("e2b/data")
    print_method = ObjectName("_repr_e2b_data_")
    _return_type = (dict, str)

    def __call__(self, obj):
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(obj, pandas.DataFrame):
            return obj.to_dict(orient="list")
        return super().__call__(obj)


class _E2bChart(BaseFormatter):
    format_type = Unicode("e2b/chart")
    print_method = ObjectName("_repr_e2b_chart_")
    _return_type = (dict, str)

    def __call__(self, obj):
        if sys.modules.get("matplotlib") is not None:
            from matplotlib.figure import Figure

            if isinstance(obj, Figure):
                try:
                    from e2b_charts import chart_figure_to_dict

                    return chart_figure_to_dict(obj)
                except Exception:
                    return {}
        return super().__call__(obj)


_ip = get_ipython()
if _ip is not None:
    for _f in (_E2bData, _E2bChart):
        _formatter = _f(parent=_ip.display_formatter)
        _ip.display_formatter.formatters[_formatter.format_type] = _formatter
