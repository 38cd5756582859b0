import ProvLedger
