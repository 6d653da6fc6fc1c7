"""Seed the Parameter catalogue with every DEXMA base code, its unit and nature.

Frozen here on purpose: a data migration must not change when application code does.
Accumulated quantities appear as a cumulative index and as interval deltas; instantaneous
ones as point values and as interval averages, maxima and minima.
"""

from django.db import migrations

A, INST = "accumulated", "instantaneous"

# (code, key, name, unit, nature) — codes and units from DEXMA's public parameter list.
CATALOGUE = [
    (301, "temperature", "Temperature", "°C", INST),
    (302, "humidity", "Humidity", "%", INST),
    (303, "light", "Light", "lux", INST),
    (306, "co", "CO", "ppm", INST),
    (307, "co2", "CO2", "ppm", INST),
    (308, "sound", "Sound", "dB", INST),
    (309, "soil_humidity", "Soil humidity", "%", INST),
    (401, "active_power", "Active power", "W", INST),
    (402, "active_energy", "Active energy", "kWh", A),
    (403, "inductive_reactive_power", "Inductive reactive power", "VAr", INST),
    (404, "inductive_reactive_energy", "Inductive reactive energy", "kVArh", A),
    (405, "voltage", "Voltage", "V", INST),
    (406, "current", "Current", "A", INST),
    (407, "capacitive_reactive_power", "Capacitive reactive power", "VAr", INST),
    (408, "capacitive_reactive_energy", "Capacitive reactive energy", "kVArh", A),
    (409, "apparent_power", "Apparent power", "VA", INST),
    (410, "apparent_energy", "Apparent energy", "kVAh", A),
    (411, "cos_phi", "Cos phi", "", INST),
    (412, "power_factor", "Power factor", "", INST),
    (413, "neutral_current", "Neutral current", "A", INST),
    (414, "frequency", "Frequency", "Hz", INST),
    (419, "gas_volume", "Gas volume", "m³", A),
    (420, "gas_energy", "Gas energy", "kWh", A),
    (422, "thd_voltage", "THD voltage", "%", INST),
    (423, "thd_current", "THD current", "%", INST),
    (426, "average_current", "Average current", "A", INST),
    (432, "fuel_volume", "Fuel volume", "m³", A),
    (433, "fuel_energy", "Fuel energy", "kWh", A),
    (452, "exported_active_energy", "Exported active energy", "kWh", A),
    (454, "exported_inductive_reactive_energy", "Exported inductive reactive energy", "kVArh", A),
    (458, "exported_capacitive_reactive_energy", "Exported capacitive reactive energy", "kVArh", A),
    (501, "binary_input", "Binary input", "", INST),
    (502, "pulse_counter", "Pulse counter", "", A),
    (503, "generic_value", "Generic value", "", INST),
    (701, "device_temperature", "Device temperature", "°C", INST),
    (801, "thermal_power", "Thermal power", "kW", INST),
    (802, "thermal_energy", "Thermal energy", "kWh", A),
    (803, "hot_water_volume", "Hot water volume", "m³", A),
    (804, "mass_flow", "Mass flow", "m³/h", INST),
    (805, "inlet_temperature", "Inlet temperature", "°C", INST),
    (806, "outlet_temperature", "Outlet temperature", "°C", INST),
    (807, "cop_eer", "COP/EER", "", INST),
    (808, "low_pressure", "Low pressure", "bar", INST),
    (809, "high_pressure", "High pressure", "bar", INST),
    (901, "water_volume", "Water volume", "m³", A),
    (902, "water_flow", "Water flow", "m³/h", INST),
]

INTERVAL_OPERATIONS = {A: [("delta", "delta")], INST: [("avg", "average"), ("max", "maximum"), ("min", "minimum")]}


def rows():
    for code, key, name, unit, nature in CATALOGUE:
        point_kind = "cumulative" if nature == A else "instantaneous"
        yield dict(key=key, name=name, unit=unit, kind=point_kind, nature=nature, operation="",
                   dexma_code=code)
        for op, label in INTERVAL_OPERATIONS[nature]:
            yield dict(key=f"{key}_{op}", name=f"{name} ({label} per interval)", unit=unit,
                       kind="interval", nature=nature, operation=op, dexma_code=code)


def seed(apps, schema_editor):
    Parameter = apps.get_model("core", "Parameter")
    for row in rows():
        Parameter.objects.update_or_create(key=row["key"], defaults=row)


def unseed(apps, schema_editor):
    apps.get_model("core", "Parameter").objects.filter(key__in=[r["key"] for r in rows()]).delete()


class Migration(migrations.Migration):
    dependencies = [("core", "0002_postgresql_integrity")]

    operations = [migrations.RunPython(seed, unseed)]
