"""The Models tab's export table (ui.tabs.models.exports_table): what each number is, in the page's
language; a failed format's reason in a last column that only appears when a row has one."""

from __future__ import annotations

from ui.tabs.models import exports_table

ROW = {"format": "onnx", "options": [], "path": "exports/model.onnx", "size_mb": 10.43, "latency_ms_p50": 6.61,
       "metric": "metrics/mAP50-95(B)", "value": 0.4321, "reference": 0.4377, "drop": 0.0056, "max_abs_diff": 9.2e-05,
       "checked": True, "error": None}


def test_table_says_what_each_number_is():
    text = exports_table({"rows": [ROW, {**ROW, "format": "openvino", "options": ["int8"], "drop": 0.0312}],
                          "machine": "x86_64, 2 CPUs"})
    assert "| Format | MB | ms/image (p50) | Metric | Export | PyTorch | Drop | Max abs. diff |" in text
    assert "| onnx | 10.4 | 6.6 | <abbr title=\"metrics/mAP50-95(B)\">box mAP50-95</abbr> | 0.432 | 0.438 | +0.006 | 9e-05 |" in text
    assert "| openvino (int8) |" in text and "+0.031" in text
    assert "Note" not in text and "Measured on: x86_64, 2 CPUs" in text


def test_a_failed_format_says_why_and_korean_headers():
    failed = {"format": "ncnn", "options": [], "path": "exports/model_ncnn_model", "checked": False,
              "error": "ultralytics' ncnn export failed: <pnnx> missing"}
    text = exports_table({"rows": [ROW, failed]}, "ko")
    assert "| 형식 | MB | ms/이미지 (p50) | 지표 | 내보낸 모델 | PyTorch | 하락 | 최대 출력 차이 | 비고 |" in text
    assert "| ncnn | — | — | — | — | — | — | — |" in text and "pnnx" in text
    assert "<pnnx>" not in text  # Markdown-escaped: not eaten as an HTML tag
    assert exports_table({"rows": []}, "ko").startswith("아직 내보낸 모델이 없습니다")
