"""The demo: the sandbox platforms wired to the hub as a customer would wire the real ones.

`manage.py demo_setup` creates this customer (a deployment with two sites and four meters)
and then asks each integration for its part. The parts that need a simulator's own records
(the DEXMA platform's account and datasource, the upstream provider's profile) live here, in
the sandbox, so that no integration depends on its simulator.
"""

# The deployment `manage.py demo_setup` creates.
DEMO_DEPLOYMENT = "demo-acme"

SITES = [
    ("hq-madrid", "Headquarters Madrid", "Calle de Alcalá 45", "Madrid", "28014", "ES",
     40.4189, -3.6967, "Europe/Madrid"),
    ("warehouse-valencia", "Warehouse Valencia", "Avinguda del Port 120", "Valencia", "46023",
     "ES", 39.4598, -0.3416, "Europe/Madrid"),
]
DEVICES = [
    ("MAD-MAIN-01", "Main incomer", "hq-madrid", "Off-site Electricity"),
    ("MAD-HVAC-02", "HVAC plant", "hq-madrid", "Off-site Electricity"),
    ("MAD-PV-03", "Rooftop PV", "hq-madrid", "On-site Renewable Electricity"),
    ("VLC-MAIN-01", "Main incomer", "warehouse-valencia", "Off-site Electricity"),
]
