"""The design-point columns a study knows, which are integers, and the value a missing column takes: shared by the
study (sim/dse/study.py) and the point encoder (sim/dse/encode.py)."""

KNOWN_AXES = ("model", "device", "phase", "batch", "seq_len", "context", "output_len", "dtype", "quant",
              "kv_dtype", "profile", "host", "host_speed", "system", "mapping")
INT_AXES = ("batch", "seq_len", "context", "output_len")
DEFAULTS = {"phase": "decode", "batch": 1, "seq_len": 512, "context": 0, "output_len": 256, "dtype": "bf16",
            "quant": "none", "kv_dtype": "", "profile": "eager", "host": "", "host_speed": 1.0, "system": "",
            "mapping": ""}
