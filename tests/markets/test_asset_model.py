import pytest
from django.core.exceptions import ValidationError

from markets.models import Asset


def _asset(**fields) -> Asset:
    return Asset(symbol="ETHUSDT", base="ETH", quote="USDT", **fields)


def test_valid_hyperparameter_overrides_pass():
    _asset(hyperparameters={"max_epochs": 4, "batch_size": 64}).clean()


def test_an_unknown_hyperparameter_is_refused_by_name():
    with pytest.raises(ValidationError) as error:
        _asset(hyperparameters={"hiden_size": 8}).clean()
    assert "unknown hyperparameter 'hiden_size'" in str(error.value.message_dict["hyperparameters"])


def test_a_bad_hyperparameter_value_is_refused():
    with pytest.raises(ValidationError) as error:
        _asset(hyperparameters={"dropout": 2}).clean()
    assert "dropout" in str(error.value.message_dict["hyperparameters"])


@pytest.mark.parametrize(
    ("symbol", "base"), [("ETH/USDT", "ETH/"), ("ETH?USDT", "ETH?"), ("ETH_USDT", "ETH_")]
)
def test_a_symbol_with_other_characters_than_letters_and_digits_is_refused(symbol, base):
    with pytest.raises(ValidationError) as error:
        Asset(symbol=symbol, base=base, quote="USDT").clean()
    assert "may hold only letters and digits" in str(error.value.message_dict["symbol"])


def test_symbols_with_digits_pass():
    Asset(symbol="1000SHIBUSDT", base="1000SHIB", quote="USDT").clean()


def test_the_horizon_is_refused_in_the_hyperparameters_since_it_has_its_own_field():
    with pytest.raises(ValidationError) as error:
        _asset(horizon=12, hyperparameters={"horizon": 48}).clean()
    assert "set the horizon in the Horizon field" in str(error.value.message_dict["hyperparameters"])


def test_hyperparameters_must_be_an_object():
    with pytest.raises(ValidationError, match="must be a JSON object"):
        _asset(hyperparameters=[1, 2]).clean()


def test_no_hyperparameters_at_all_mean_no_overrides():
    asset = _asset(hyperparameters=None)  # what an emptied admin field gives
    asset.clean()
    assert asset.hyperparameters == {}


def test_symbol_must_be_base_plus_quote():
    with pytest.raises(ValidationError, match="symbol must be base \\+ quote"):
        Asset(symbol="ETHBTC", base="ETH", quote="USDT").clean()


def test_horizon_is_bounded():
    with pytest.raises(ValidationError, match="between 1 and 168"):
        _asset(horizon=500).clean()


def test_the_display_name_is_base_slash_quote():
    assert Asset(symbol="BTCUSDT", base="BTC", quote="USDT").display_name == "BTC/USDT"
    assert Asset(symbol="BTCUSDT").display_name == "BTCUSDT"
