"""The progress line: rate and ETA from the share of documents done."""

import io

from bert_pretrain.data.progress import Progress


def test_progress_line_reports_rate_share_and_eta(monkeypatch):
    clock = iter([100.0, 110.0, 130.0])
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    stream = io.StringIO()
    progress = Progress(total_documents=400, stream=stream)
    progress.update(documents=100, instances=5000)              # 10 s in, a quarter done
    progress.update(documents=400, instances=20000, final=True)
    first, last = stream.getvalue().splitlines()
    assert first == "5,000 instances | 500/s | documents  25.0% | ETA 00:00:30"
    assert last == "20,000 instances | 667/s | documents 100.0% | ETA 00:00:00"
