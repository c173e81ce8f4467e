"""Hand-checked figures: the documented formula applied to sourced constants, never our own output.

energy_Wh = tokens x Wh/token x PSE 1.04 x TL 1.08 x PUE(region); carbon_g = energy_Wh / 1000 x grid.
Flat Wh/token of a measured model = the paper's medium-query Wh / the paper's host PUE / 1000
(docs/methodology.md section 2; Jegham et al. 2025 v1 Table 4, AWS PUE 1.14, Azure 1.12).
"""

PSE, TL = 1.04, 1.08

WH_PER_TOKEN = {
    "claude-sonnet-4": 0.00245,  # the seed's published figure
    "llama-3.3-70b": 0.857 / 1.14 / 1000,
    "claude-3-7-sonnet": 2.781 / 1.14 / 1000,
    "gpt-4o": 1.214 / 1.12 / 1000,
    "gpt-4o-mini": 1.418 / 1.12 / 1000,
    "o3": 21.414 / 1.12 / 1000,
}

# (PUE, grid gCO2e/kWh): GSF real-time-cloud regional PUE; Ember/OWID 2024 country grid; global defaults.
REGIONS = {
    "aws:eu-central-1": (1.35, 344.1),
    "aws:us-east-1": (1.15, 383.5),
    "azure:eastus": (1.14, 383.5),
    "azure:swedencentral": (1.16, 35.8),
    "global": (1.54, 473.0),
}


def energy_wh(model: str, tokens: float, region: str) -> float:
    return tokens * WH_PER_TOKEN[model] * PSE * TL * REGIONS[region][0]


def carbon_g(model: str, tokens: float, region: str) -> float:
    return energy_wh(model, tokens, region) / 1000 * REGIONS[region][1]
