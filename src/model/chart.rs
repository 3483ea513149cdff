//! Typed chart data (`e2b/chart`), shaped like E2B's code-interpreter `charts` model.
//!
//! Parsing is lenient on purpose: a chart type this SDK does not know, or a known one whose
//! fields do not have the expected shape, becomes [`Chart::Unknown`] with the raw value, so a
//! newer sandbox template never turns a result into an error. Every chart keeps the raw value
//! it was parsed from ([`Chart::raw`]), and serializes as it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Structured data behind a chart, as the sandbox extracted it from a figure.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Chart {
    /// `"line"`: one element per line.
    Line(PointChart),
    /// `"scatter"`: one element per point set.
    Scatter(PointChart),
    /// `"bar"`: one element per bar.
    Bar(BarChart),
    /// `"pie"`: one element per wedge.
    Pie(PieChart),
    /// `"box_and_whisker"`: one element per box.
    BoxAndWhisker(BoxAndWhiskerChart),
    /// `"superchart"`: a figure of several charts.
    Super(SuperChart),
    /// A type this SDK does not know, or data that does not have its type's shape.
    Unknown(Value),
}

/// An x or y value, or a tick: a number, or a label (dates, categories).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ChartValue {
    /// A number.
    Number(f64),
    /// Anything else, as text.
    Text(String),
}

/// A line or scatter chart (E2B's `LineChart`/`ScatterChart`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PointChart {
    /// The title.
    #[serde(default)]
    pub title: Option<String>,
    /// The x axis label.
    #[serde(default)]
    pub x_label: Option<String>,
    /// The y axis label.
    #[serde(default)]
    pub y_label: Option<String>,
    /// The x axis unit.
    #[serde(default)]
    pub x_unit: Option<String>,
    /// The y axis unit.
    #[serde(default)]
    pub y_unit: Option<String>,
    /// Positions of the x ticks.
    #[serde(default, deserialize_with = "or_default")]
    pub x_ticks: Vec<ChartValue>,
    /// Labels of the x ticks.
    #[serde(default, deserialize_with = "or_default")]
    pub x_tick_labels: Vec<String>,
    /// The x scale (`"linear"`, `"log"`, `"datetime"`, ...).
    #[serde(default)]
    pub x_scale: Option<String>,
    /// Positions of the y ticks.
    #[serde(default, deserialize_with = "or_default")]
    pub y_ticks: Vec<ChartValue>,
    /// Labels of the y ticks.
    #[serde(default, deserialize_with = "or_default")]
    pub y_tick_labels: Vec<String>,
    /// The y scale.
    #[serde(default)]
    pub y_scale: Option<String>,
    /// The lines or point sets.
    #[serde(default, deserialize_with = "or_default")]
    pub elements: Vec<PointData>,
    #[serde(skip)]
    raw: Value,
}

/// One line, or one set of scattered points.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PointData {
    /// The legend label.
    #[serde(default)]
    pub label: Option<String>,
    /// The `(x, y)` points.
    #[serde(default, deserialize_with = "or_default")]
    pub points: Vec<(ChartValue, ChartValue)>,
}

/// A bar chart (E2B's `BarChart`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BarChart {
    /// The title.
    #[serde(default)]
    pub title: Option<String>,
    /// The x axis label.
    #[serde(default)]
    pub x_label: Option<String>,
    /// The y axis label.
    #[serde(default)]
    pub y_label: Option<String>,
    /// The x axis unit.
    #[serde(default)]
    pub x_unit: Option<String>,
    /// The y axis unit.
    #[serde(default)]
    pub y_unit: Option<String>,
    /// The bars.
    #[serde(default, deserialize_with = "or_default")]
    pub elements: Vec<BarData>,
    #[serde(skip)]
    raw: Value,
}

/// One bar.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BarData {
    /// The bar's label (its x tick).
    #[serde(default)]
    pub label: Option<String>,
    /// The group (series) it belongs to, for grouped bars.
    #[serde(default)]
    pub group: Option<String>,
    /// Its height.
    #[serde(default)]
    pub value: Option<ChartValue>,
}

/// A pie chart (E2B's `PieChart`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PieChart {
    /// The title.
    #[serde(default)]
    pub title: Option<String>,
    /// The wedges.
    #[serde(default, deserialize_with = "or_default")]
    pub elements: Vec<PieData>,
    #[serde(skip)]
    raw: Value,
}

/// One wedge of a pie.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PieData {
    /// The wedge's label.
    #[serde(default)]
    pub label: Option<String>,
    /// Its angle, in degrees.
    #[serde(default)]
    pub angle: Option<f64>,
    /// Its radius.
    #[serde(default)]
    pub radius: Option<f64>,
}

/// A box-and-whisker chart (E2B's `BoxAndWhiskerChart`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BoxAndWhiskerChart {
    /// The title.
    #[serde(default)]
    pub title: Option<String>,
    /// The x axis label.
    #[serde(default)]
    pub x_label: Option<String>,
    /// The y axis label.
    #[serde(default)]
    pub y_label: Option<String>,
    /// The x axis unit.
    #[serde(default)]
    pub x_unit: Option<String>,
    /// The y axis unit.
    #[serde(default)]
    pub y_unit: Option<String>,
    /// The boxes.
    #[serde(default, deserialize_with = "or_default")]
    pub elements: Vec<BoxAndWhiskerData>,
    #[serde(skip)]
    raw: Value,
}

/// One box with its whiskers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BoxAndWhiskerData {
    /// The box's label.
    #[serde(default)]
    pub label: Option<String>,
    /// The lower whisker.
    #[serde(default)]
    pub min: Option<f64>,
    /// The lower quartile.
    #[serde(default)]
    pub first_quartile: Option<f64>,
    /// The median.
    #[serde(default)]
    pub median: Option<f64>,
    /// The upper quartile.
    #[serde(default)]
    pub third_quartile: Option<f64>,
    /// The upper whisker.
    #[serde(default)]
    pub max: Option<f64>,
    /// Points beyond the whiskers.
    #[serde(default, deserialize_with = "or_default")]
    pub outliers: Vec<f64>,
}

/// A figure of several charts (E2B's `SuperChart`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SuperChart {
    /// The figure's title.
    pub title: Option<String>,
    /// The charts, each parsed as leniently as a top-level one.
    pub elements: Vec<Chart>,
    raw: Value,
}

/// `null` as the default, so that a `null` list does not make a chart unknown.
fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn typed<T: DeserializeOwned>(value: &Value) -> Option<T> {
    // A `&Value` deserializes in place: no copy of the data before the typed one.
    match T::deserialize(value) {
        Ok(t) => Some(t),
        Err(e) => {
            log::debug!("chart data does not have its type's shape ({e}); kept as unknown");
            None
        }
    }
}

impl Chart {
    /// Parses `e2b/chart` data; never fails (see [`Chart::Unknown`]).
    pub fn from_value(value: &Value) -> Chart {
        let raw = value.clone();
        let parsed = match value["type"].as_str() {
            Some("line") => typed(value).map(|c: PointChart| Chart::Line(PointChart { raw, ..c })),
            Some("scatter") => {
                typed(value).map(|c: PointChart| Chart::Scatter(PointChart { raw, ..c }))
            }
            Some("bar") => typed(value).map(|c: BarChart| Chart::Bar(BarChart { raw, ..c })),
            Some("pie") => typed(value).map(|c: PieChart| Chart::Pie(PieChart { raw, ..c })),
            Some("box_and_whisker") => typed(value)
                .map(|c: BoxAndWhiskerChart| Chart::BoxAndWhisker(BoxAndWhiskerChart { raw, ..c })),
            Some("superchart") => match &value["elements"] {
                Value::Array(elements) => Some(Chart::Super(SuperChart {
                    title: value["title"].as_str().map(str::to_string),
                    elements: elements.iter().map(Chart::from_value).collect(),
                    raw,
                })),
                _ => None,
            },
            _ => None,
        };
        parsed.unwrap_or_else(|| Chart::Unknown(value.clone()))
    }

    /// The data as the sandbox sent it.
    pub fn raw(&self) -> &Value {
        match self {
            Chart::Line(c) | Chart::Scatter(c) => &c.raw,
            Chart::Bar(c) => &c.raw,
            Chart::Pie(c) => &c.raw,
            Chart::BoxAndWhisker(c) => &c.raw,
            Chart::Super(c) => &c.raw,
            Chart::Unknown(v) => v,
        }
    }

    /// The chart's `type` as sent (`"line"`, `"bar"`, ...), when it has one.
    pub fn type_name(&self) -> Option<&str> {
        self.raw()["type"].as_str()
    }

    /// The title, whatever the type.
    pub fn title(&self) -> Option<&str> {
        self.raw()["title"].as_str()
    }
}

impl Serialize for Chart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_types_parse_and_keep_the_raw_value() {
        let raw = json!({"type": "line", "title": "t", "x_label": "x", "y_label": null,
            "elements": [{"label": "a", "points": [[1.0, 2.0], ["2024-01-01", 3]]}],
            "x_ticks": null, "extra": 1});
        let Chart::Line(line) = Chart::from_value(&raw) else {
            panic!("not a line")
        };
        assert_eq!(line.title.as_deref(), Some("t"));
        assert_eq!(
            line.elements[0].points[1].0,
            ChartValue::Text("2024-01-01".into())
        );
        assert_eq!(line.elements[0].points[1].1, ChartValue::Number(3.0));
        let chart = Chart::from_value(&raw);
        assert_eq!(chart.raw(), &raw);
        assert_eq!(serde_json::to_value(&chart).unwrap(), raw);

        let sup = json!({"type": "superchart", "title": "s", "elements": [
            {"type": "pie", "elements": [{"label": "a", "angle": 90, "radius": 1}]},
            {"type": "box_and_whisker", "elements": [{"label": "b", "min": 0, "first_quartile": 1,
              "median": 2, "third_quartile": 3, "max": 4, "outliers": [9]}]}]});
        let Chart::Super(s) = Chart::from_value(&sup) else {
            panic!("not a superchart")
        };
        assert!(matches!(&s.elements[0], Chart::Pie(p) if p.elements[0].angle == Some(90.0)));
        assert!(
            matches!(&s.elements[1], Chart::BoxAndWhisker(b) if b.elements[0].outliers == [9.0])
        );
    }

    #[test]
    fn unknown_types_and_bad_shapes_are_unknown() {
        for raw in [
            json!({"type": "sankey", "elements": []}),
            json!({"type": "bar", "elements": "not a list"}),
            json!("just a string"),
        ] {
            let chart = Chart::from_value(&raw);
            assert_eq!(chart, Chart::Unknown(raw.clone()));
            assert_eq!(chart.raw(), &raw);
        }
    }
}
