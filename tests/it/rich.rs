//! Rich results from real plotting and data libraries, installed into the local sandbox's venv.

use crate::support::{deadline, init_logs};
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
        assert_eq!(chart["type"], "bar");
        assert_eq!(chart["title"], "Sales per month");
        assert_eq!(chart["elements"][0]["label"], "Jan");
        assert_eq!(chart["elements"][5]["value"], 230.0);

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
