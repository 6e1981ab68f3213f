from factorkit.demo import TARGETS, summary_lines


def test_demo_summary_names_the_worst_attribute_and_the_target():
    attrs = ("Smiling", "Bangs")
    m = {"psnr": 26.5, "ssim": 0.9}
    for a, (ident, rec, add, rem, closer) in zip(attrs, ((0.97, 0.98, 0.95, 0.99, 0.93), (0.96, 0.96, 0.80, 0.97, 0.99))):
        m.update({f"identity-retention.{a}.edit": ident, f"identity-retention.{a}.reconstruction": rec,
                  f"edit-success.{a}.add": add, f"edit-success.{a}.remove": rem,
                  f"counterfactual.{a}.closer_fraction": closer})
    lines = summary_lines(m, attrs, 0.99, 0.78)
    assert lines[0].startswith("1. reconstruction: PSNR 26.50 dB (at target)")
    assert "lowest 0.960 (Bangs; at target)" in lines[1] and "plain reconstruction 0.970" in lines[1]
    assert "lowest add (0→1) 0.800 (Bangs)" in lines[2] and f"below the target {TARGETS['edit']}" in lines[2]
    assert "≥ 93.0 %" in lines[3] and "lowest: Smiling; at target" in lines[3]
    assert "0.990 accuracy" in lines[4]
