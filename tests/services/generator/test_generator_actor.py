"""Generator actors take the job's resolved Preset object (resolved once on the driver, never rebuilt from a
name and override text in each actor)."""
import dataclasses

from dad_core import get_preset
from services.generator.actor import DADWorker


def test_the_actor_uses_the_preset_object_it_is_given():
    preset = get_preset("tiny")
    preset = dataclasses.replace(preset, attack=dataclasses.replace(preset.attack, steps=3, seed=7))
    worker = DADWorker(preset, ["tench", "goldfish", "tabby cat"], torch_threads=1, device="cpu")
    assert worker.attack == preset.attack and worker.image_size == preset.image_size
    assert set(worker.identity()) == {"teacher", "discretizer", "device"}
