//! Rich results from real plotting and data libraries, installed into the local sandbox's venv.

use crate::support::{deadline, init_logs, local};
use e2b_blocking::chart::{Chart, ChartValue};
use e2b_blocking::{LocalOptions, Sandbox};

#[test]
fn the_chart_example_makes_a_real_png_and_chart_data() {
    deadline(|| {
        init_logs();
        let sbx = Sandbox::builder()
            .local_with(LocalOptions::new().packages(["matplotlib", "pandas"]))
            .unwrap();
        let exec = sbx
            .run_code(include_str!("../../examples/chart.py"))
            .unwrap();
        assert!(exec.error.is_none(), "{:?}", exec.error);
        let fig = exec
            .results
            .iter()
            .find(|r| r.png.is_some())
            .expect("a PNG");
        let png = fig.png_bytes().unwrap().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert!(width > 100 && height > 100, "{width}x{height}");
        assert!(png.ends_with(b"IEND\xaeB`\x82"), "PNG is complete");

        let chart = fig.chart.as_ref().expect("e2b/chart data");
        let raw = chart.raw();
        assert_eq!(raw["type"], "bar");
        assert_eq!(raw["title"], "Sales per month");
        assert_eq!(raw["elements"][0]["label"], "Jan");
        assert_eq!(raw["elements"][5]["value"], 230.0);
        let Chart::Bar(bar) = chart else {
            panic!("not a bar chart: {chart:?}")
        };
        assert_eq!(bar.title.as_deref(), Some("Sales per month"));
        assert_eq!(bar.elements[0].label.as_deref(), Some("Jan"));
        assert_eq!(bar.elements[5].value, Some(ChartValue::Number(230.0)));

        let exec = sbx
            .run_code("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
            .unwrap();
        let main = exec.main_result().expect("a main result");
        assert!(main.html.is_some());
        assert_eq!(
            main.data.as_ref().unwrap(),
            &serde_json::json!({"a": [1, 2], "b": ["x", "y"]})
        );
    });
}

/// A matplotlib line chart comes back typed, with its labels and points.
#[test]
fn a_matplotlib_line_chart_is_typed() {
    deadline(|| {
        init_logs();
        let sbx = Sandbox::builder()
            .local_with(LocalOptions::new().packages(["matplotlib"]))
            .unwrap();
        let exec = sbx
            .run_code(
                "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n\
                 fig, ax = plt.subplots()\n\
                 ax.plot([1, 2, 3], [4, 5, 6], label='up')\n\
                 ax.set_title('Growth'); ax.set_xlabel('day'); ax.set_ylabel('n')\n\
                 fig",
            )
            .unwrap();
        assert!(exec.error.is_none(), "{:?}", exec.error);
        let chart = exec
            .results
            .iter()
            .find_map(|r| r.chart.as_ref())
            .expect("e2b/chart data");
        let Chart::Line(line) = chart else {
            panic!("not a line chart: {chart:?}")
        };
        assert_eq!(chart.title(), Some("Growth"));
        assert_eq!(line.x_label.as_deref(), Some("day"));
        assert_eq!(line.y_label.as_deref(), Some("n"));
        assert_eq!(line.elements.len(), 1);
        assert_eq!(line.elements[0].label.as_deref(), Some("up"));
        let n = ChartValue::Number;
        assert_eq!(
            line.elements[0].points,
            [(n(1.0), n(4.0)), (n(2.0), n(5.0)), (n(3.0), n(6.0))]
        );
    });
}

/// Rich results count against the execution's cap too: it keeps the newest that fit (the main
/// result, which comes last, among them) and counts the others, which `on_result` still saw.
#[test]
fn an_execution_keeps_the_newest_rich_results_that_fit_its_cap() {
    deadline(|| {
        let sbx = local();
        let mut seen = 0;
        let exec = sbx
            .code(
                "import base64\nfrom IPython.display import display\n\
                 for i in range(40):\n    \
                 display({'image/png': base64.b64encode(bytes([i]) * (192 << 10)).decode()}, raw=True)\n\
                 'done'",
            )
            .max_output(1 << 20)
            .on_result(|_| seen += 1)
            .run()
            .unwrap();
        assert_eq!(seen, 41);
        assert_eq!(exec.text(), Some("'done'"));
        let kept: Vec<u8> = exec
            .results
            .iter()
            .filter_map(|r| r.png_bytes().unwrap())
            .map(|png| png[0])
            .collect();
        // Each image is 256 KiB of base64: three fit in 1 MiB beside the main result.
        assert_eq!(kept, [37, 38, 39]);
        assert_eq!(exec.dropped.results, 37);
        assert!(exec.dropped.result_bytes >= 37 * (256 << 10));
        assert_eq!(
            (exec.dropped.stdout_bytes, exec.dropped.stderr_bytes),
            (0, 0)
        );
    });
}
