"""Inputs for main.go: `inputs.py yaml` prints JSON objects, `inputs.py tab` JSON strings."""
import json
import random
import sys

STRINGS = ["", " ", "a", "true", "True", "yes", "no", "on", "off", "y", "n", "null", "Null", "~", "123", "-12", "+3", "0x1F", "0o17", "017", "0b101", "1_000", "1.5", ".5", "1.", "1e3", "1E-3", ".inf", "-.inf", ".nan", "1:20", "190:20:30.15", "2024-01-02", "2024-1-2", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123456Z", "2024-01-02 03:04:05", "2024-01-02T03:04:05+02:00", "2024-13-02", "20240102", "v1.36.3", "go1.26.8", "linux/amd64", "10.0.0.1", "10.0.0.1/24", "1Gi", "100m", "500Mi", "0.5", "3 (5m ago)", "a: b", "a:b", "a :b", "a #b", "a#b", "#x", "-x", "- x", "--", "---", "---x", "...", "?x", "? x", ":x", ": x", "x:", "x: ", "*x", "&x", "!x", "|x", ">x", "'x'", "\"x\"", "%x", "@x", "`x", ",x", "[x]", "{x}", "x,y", "x[y]", "it's", "tab\there", "trail ", " lead", "a  b", "a\nb", "a\nb\n", "a\n\n", "\nlead", " x\ny", "x \ny", "x\n y", "crlf\r\nx", "cr\rx", "é", "日本語", "emoji 😀", "\u0001ctl", "\u007f", "\u0085nel", "\u00a0nbsp", "\u2028ls", "\ufeffbom", "back\\slash", "q\"uote", "<none>", "<a&b>", "=", "=x", "x=y", "<<", "Y", "NO", "OFF", "FALSE", "0", "00", "-0", "1e", "1e+", "e3", "+.inf", "+", "-", ".", "..", "1.2.3", "0.0.0.0", "::1", "fe80::1", "http://x.y/z?a=b#c", "sha256:abc", "registry.example.com/img:1.2.3", "/etc/passwd", "C:\\x", "50%", "a|b", "a>b", "a!b", "a&b", "a*b", "{{ .x }}"]
LONG = ["word " * 30, "x" * 100, "a " * 60, "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua", "Back-off restarting failed container scorer in pod credit-scorer_credit-service(5f0c7b9e-1a1b-4c3d-9e8f-0a1b2c3d4e5f) and more words here", "  double  spaces  in  a  long  string  that  goes  past  eighty  columns  for  sure  yes  indeed  ok", "x " * 41 + " y", "quoted: " + "z " * 50, "tab\t" * 30, "\"" + "q " * 45 + "\"", "multi\nline " + "w " * 50 + "\nend"]
KEYS = ["a10", "a9", "a", "A", "b", "-x", "_y", "1", "10", "2", "02", "a01", "a1", "a001", "z", "Z", "é", "x.y/z", "app.kubernetes.io/name", "app", "kubernetes.io/cluster-service", "k8s-app", "80", "443", "8080", "b2c", "b10c", "a-b", "a_b", "a.b", "aB", "Ab"]


def objects():
    for s in STRINGS + LONG:
        yield {"k": s}
        yield {"list": [s, s]}
    yield {s: 1 for s in STRINGS if s and "\n" not in s}
    yield {k: k for k in KEYS}
    yield {"n": [1, -1, 0, 1.5, 0.1, 1e21, 1e-7, 123456789012, 1234567.5, 3.0, 100000000.0, -0.5],
           "b": [True, False, None], "e": {}, "ea": [], "nested": [[1, [2, []]], {"a": {}}, [{"x": 1, "y": [1]}]]}
    yield {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"x\",\"namespace\":\"credit-service\"},\"data\":{\"a\":\"b\"}}\n"}}}
    yield {"x" * 130: 1, "y" * 128: 2}


def tables():
    random.seed(11)
    words = ["", "a", "NAME", "credit-api-7d9f8b6c5-x2x4z", "1/1", "Running", "0", "3 (5m ago)", "é日本", "<none>", "kwok-node-0", "10.244.0.12", "x" * 20]
    for _ in range(120):
        lines = []
        cols = random.randint(1, 6)
        for _ in range(random.randint(1, 8)):
            if random.random() < 0.12:
                lines.append("")
                cols = random.randint(1, 6)
                continue
            c = cols if random.random() < 0.8 else random.randint(1, 7)
            cells = [random.choice(words) for _ in range(c)]
            trailing = "\t" if random.random() < 0.1 else ""
            lines.append("\t".join(cells) + trailing)
        yield "\n".join(lines) + ("\n" if random.random() < 0.9 else "")


if sys.argv[1] == "yaml":
    for o in objects():
        # kubectl only prints objects with a kind; the fields are part of every case.
        o["apiVersion"], o["kind"] = "v1", "X"
        print(json.dumps(o, ensure_ascii=False))
else:
    for t in tables():
        print(json.dumps(t, ensure_ascii=False))
