from __future__ import annotations

import pytest

from dmo.config.schema import ModMllmSettings, ModSettings
from dmo.errors import ConfigError
from dmo.models import ModMLLMConfig, register_auto


def test_defaults_give_the_reference_model():
    config = ModMLLMConfig()
    assert config.num_image_tokens == 64
    assert config.layer_retention()[:2] == (1.0, 1.0)
    assert len(config.layer_retention()) == 8


def test_json_round_trip_keeps_every_setting(tmp_path):
    config = ModMLLMConfig(mod_schedule="explicit", mod_retention=(1.0, 0.5, 0.25), num_hidden_layers=3, tanh_alpha=0.3)
    config.save_pretrained(tmp_path)
    loaded = ModMLLMConfig.from_pretrained(tmp_path)
    assert loaded.mod_settings() == config.mod_settings()
    assert loaded.mod_retention == [1.0, 0.5, 0.25]
    assert loaded.to_dict() == config.to_dict()


def test_mod_settings_names_schedule_retention_and_tanh():
    settings = ModMLLMConfig(mod_schedule="constant", mod_constant=0.4, num_hidden_layers=2).mod_settings()
    assert settings == {"schedule": "constant", "retention": [0.4, 0.4], "tanh_alpha": 0.2, "tanh_beta": 1.0}


def test_from_settings_maps_the_project_config():
    settings = ModMllmSettings(num_layers=4, num_heads=2, hidden_size=32, mod=ModSettings(schedule="linear", floor=0.25))
    config = ModMLLMConfig.from_settings(
        settings, vocab_size=100, image_token_id=5, pad_token_id=0, bos_token_id=1, eos_token_id=2
    )
    assert (config.num_hidden_layers, config.num_attention_heads, config.hidden_size) == (4, 2, 32)
    assert config.image_token_id == 5 and config.vocab_size == 100
    assert config.layer_retention() == pytest.approx([1.0, 0.75, 0.5, 0.25])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hidden_size": 100, "num_attention_heads": 3}, "hidden_size"),
        ({"image_size": 30, "patch_size": 4}, "image_size"),
        ({"mod_schedule": "explicit"}, "mod_retention"),
        ({"mod_schedule": "bogus"}, "mod_schedule"),
        ({"image_token_id": 999}, "image_token_id"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ],
)
def test_invalid_arguments_raise_config_error_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        ModMLLMConfig(**kwargs)
    assert field in str(info.value)


def test_register_auto_is_idempotent_and_resolves_the_type(tmp_path):
    from transformers import AutoConfig

    register_auto()
    register_auto()
    ModMLLMConfig(hidden_size=64).save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, ModMLLMConfig) and loaded.hidden_size == 64
