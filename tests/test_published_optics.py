"""The generator's plaque optics are set beside the published coefficients they were chosen after, by code."""
from __future__ import annotations

import math

from medseg_core.data import synthetic_oct as sim


def test_every_published_structure_is_simulated_and_compared():
    table = sim.optics_beside_published()
    assert list(table.index) == list(sim.PUBLISHED_OPTICS) and set(sim.PUBLISHED_OPTICS) <= set(sim.TISSUE_OPTICS)
    for name, published in sim.PUBLISHED_OPTICS.items():
        beta, mu = sim.TISSUE_OPTICS[name]
        (xu_mu, xu_sd), (low, high) = published["xu_attenuation"], published["van_soest_attenuation"]
        row = table.loc[name]
        assert row["μ generator"] == mu
        assert math.isclose(row["Xu sd away"], (mu - xu_mu) / xu_sd)
        assert row["within van Soest"] == (low <= mu <= high)
        assert math.isclose(row["β / fibrous cap, generator"], beta / sim.TISSUE_OPTICS["fibrous_cap"][0])
    assert table.loc["fibrous_cap", "β / fibres, Xu 2008"] == 1.0


def test_published_values_keep_the_papers_order():
    """Xu et al. 2008: lipid attenuates fastest and scatters most; calcium scatters least."""
    xu = {name: values for name, values in sim.PUBLISHED_OPTICS.items()}
    assert xu["lipid"]["xu_attenuation"][0] > xu["fibrous_cap"]["xu_attenuation"][0] > 0
    assert xu["lipid"]["xu_backscatter"][0] > xu["fibrous_cap"]["xu_backscatter"][0] > xu["calcium"]["xu_backscatter"][0]
