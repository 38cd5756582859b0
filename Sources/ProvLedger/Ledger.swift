import ProvCrypto
