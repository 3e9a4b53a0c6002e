//! The bank's books, in a sled tree of their own beside the engine's.
//!
//! Keys: `a/<account>` → balance (i64, big-endian); `r/<reference>-<movement>`
//! → the journal entry a transfer's withdrawal, deposit or refund produced
//! (the idempotency index); `j/<seq>` → the journal, one entry per movement
//! of money, in order; `n` → the next journal number. Every operation is one
//! sled transaction, flushed before it returns, so a reported transaction id
//! is on disk.
//!
//! A transfer reference is one transfer. Repeating one of its movements
//! (an activity retried) returns the first transaction and moves nothing.
//! Once its money was returned by a refund, it can never move money again:
//! a new transfer needs a new reference. A refund returns exactly what the
//! reference withdrew, and only if nothing was deposited.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;

/// The tutorial's two accounts, then six more so transfers have somewhere to go.
pub const SEED_ACCOUNTS: &[(&str, i64)] = &[
    ("85-150", 2000),
    ("43-812", 0),
    ("61-224", 500),
    ("27-903", 1200),
    ("90-417", 75),
    ("12-358", 10_000),
    ("58-641", 300),
    ("77-005", 4_500),
];

const TREE: &str = "bank";
const NEXT_KEY: &[u8] = b"n";

/// What a transfer does with money.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Movement {
    Withdrawal,
    Deposit,
    /// The withdrawn money back into the source account.
    Refund,
}

impl Movement {
    fn suffix(self) -> &'static str {
        match self {
            Movement::Withdrawal => "withdrawal",
            Movement::Deposit => "deposit",
            Movement::Refund => "refund",
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            Movement::Withdrawal => "W",
            Movement::Deposit | Movement::Refund => "D",
        }
    }

    /// The idempotency key of this movement of transfer `reference`.
    pub fn reference(self, reference: &str) -> String {
        format!("{reference}-{}", self.suffix())
    }
}

/// One movement of money: a withdrawal (negative delta) or a deposit
/// (positive; refunds are deposits back into the source account).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: u64,
    /// `<reference id>-withdrawal`, `-deposit` or `-refund`.
    pub reference: String,
    pub account: String,
    pub delta: i64,
    pub transaction_id: String,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum BankError {
    #[error("The account {account} has insufficient funds to complete this transaction.")]
    InsufficientFunds { account: String },
    #[error("The account number {account} is invalid.")]
    InvalidAccount { account: String },
    /// The tutorial's bug: `deposit_that_fails`.
    #[error("This deposit has failed.")]
    DepositFailed,
    #[error("The amount {amount} is invalid: amounts are whole numbers above zero.")]
    InvalidAmount { amount: i64 },
    #[error("The account {account} cannot hold that much: its balance would overflow.")]
    Overflow { account: String },
    #[error("The reference {reference} was already used for a different transaction ({existing}).")]
    ReferenceReused { reference: String, existing: String },
    #[error(
        "The transfer {reference} was refunded ({refund}); its reference can never move money again: a new transfer needs a new reference."
    )]
    ReferenceRefunded { reference: String, refund: String },
    #[error("The transfer {reference} cannot be refunded: {why}.")]
    NothingToRefund { reference: String, why: String },
    #[error("The bank's storage failed: {0}")]
    Storage(String),
}

impl BankError {
    /// The error type a workflow sees, as the tutorial's Python classes name them.
    pub fn error_type(&self) -> &'static str {
        match self {
            BankError::InsufficientFunds { .. } => "InsufficientFundsError",
            BankError::InvalidAccount { .. } => "InvalidAccountError",
            BankError::DepositFailed => "ValueError",
            BankError::InvalidAmount { .. } => "InvalidAmountError",
            BankError::Overflow { .. } => "OverflowError",
            BankError::ReferenceReused { .. } => "ReferenceReusedError",
            BankError::ReferenceRefunded { .. } => "ReferenceRefundedError",
            BankError::NothingToRefund { .. } => "NothingToRefundError",
            BankError::Storage(_) => "BankUnavailableError",
        }
    }
}

fn storage<E: std::fmt::Display>(e: E) -> BankError {
    BankError::Storage(e.to_string())
}

fn account_key(account: &str) -> Vec<u8> {
    format!("a/{account}").into_bytes()
}

fn reference_key(reference: &str) -> Vec<u8> {
    format!("r/{reference}").into_bytes()
}

fn journal_key(seq: u64) -> Vec<u8> {
    let mut k = b"j/".to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn balance_of(bytes: &[u8]) -> Result<i64, BankError> {
    <[u8; 8]>::try_from(bytes)
        .map(i64::from_be_bytes)
        .map_err(|_| BankError::Storage("a balance is damaged".into()))
}

fn entry_of(bytes: &[u8]) -> Result<JournalEntry, BankError> {
    serde_json::from_slice(bytes)
        .map_err(|e| BankError::Storage(format!("a bank journal entry is damaged: {e}")))
}

/// `W-1b4e28ba-2fa1-4d2b-883f-0016d3cca427`: a prefix and a random UUID (v4), as the tutorial's ids.
fn transaction_id(prefix: &str) -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{prefix}-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The bank. Cheap to clone.
#[derive(Clone)]
pub struct Bank {
    tree: sled::Tree,
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bank").finish_non_exhaustive()
    }
}

/// An account and its balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub number: String,
    pub balance: i64,
}

impl Bank {
    /// The bank beside a running engine, seeded with [`SEED_ACCOUNTS`] the first time.
    pub fn open(engine: &Engine) -> Result<Bank, BankError> {
        Bank::from_tree(engine.app_tree(TREE).map_err(storage)?)
    }

    /// The bank in a data directory no engine runs (the crash tests' checker).
    pub fn open_in(archive: &crate::engine::Archive) -> Result<Bank, BankError> {
        Bank::from_tree(archive.app_tree(TREE).map_err(storage)?)
    }

    fn from_tree(tree: sled::Tree) -> Result<Bank, BankError> {
        let bank = Bank { tree };
        if bank.tree.get(NEXT_KEY).map_err(storage)?.is_none() {
            bank.tree
                .transaction(|tx| {
                    if tx.get(NEXT_KEY)?.is_none() {
                        for (number, balance) in SEED_ACCOUNTS {
                            tx.insert(account_key(number), &balance.to_be_bytes()[..])?;
                        }
                        tx.insert(NEXT_KEY, &1u64.to_be_bytes()[..])?;
                    }
                    Ok::<_, sled::transaction::ConflictableTransactionError<BankError>>(())
                })
                .map_err(storage)?;
            bank.tree.flush().map_err(storage)?;
        }
        Ok(bank)
    }

    /// Takes `amount` out of `account` for transfer `reference`. A repeat
    /// returns the first transaction id and moves no money; a refunded
    /// reference is refused.
    pub async fn withdraw(
        &self,
        account: &str,
        amount: i64,
        reference: &str,
    ) -> Result<String, BankError> {
        self.apply(account, amount, reference, Movement::Withdrawal)
            .await
    }

    /// Puts `amount` into `account` for transfer `reference`; idempotent
    /// like withdraw, and refused once the transfer was refunded.
    pub async fn deposit(
        &self,
        account: &str,
        amount: i64,
        reference: &str,
    ) -> Result<String, BankError> {
        self.apply(account, amount, reference, Movement::Deposit)
            .await
    }

    /// Returns what transfer `reference` withdrew to `account`, its source:
    /// only that amount, only if it withdrew and deposited nothing.
    pub async fn refund(
        &self,
        account: &str,
        amount: i64,
        reference: &str,
    ) -> Result<String, BankError> {
        self.apply(account, amount, reference, Movement::Refund)
            .await
    }

    /// The tutorial's bug: checks the account, then fails, every time.
    pub async fn deposit_that_fails(
        &self,
        account: &str,
        _amount: i64,
        _reference: &str,
    ) -> Result<String, BankError> {
        self.account(account)?;
        Err(BankError::DepositFailed)
    }

    async fn apply(
        &self,
        account: &str,
        amount: i64,
        reference: &str,
        movement: Movement,
    ) -> Result<String, BankError> {
        if amount <= 0 {
            return Err(BankError::InvalidAmount { amount });
        }
        let delta = match movement {
            Movement::Withdrawal => -amount,
            Movement::Deposit | Movement::Refund => amount,
        };
        let key = movement.reference(reference);
        use sled::transaction::ConflictableTransactionError::Abort;
        let outcome = self.tree.transaction(|tx| {
            let entry_at = |m: Movement| -> Result<
                Option<JournalEntry>,
                sled::transaction::ConflictableTransactionError<BankError>,
            > {
                match tx.get(reference_key(&m.reference(reference)))? {
                    Some(v) => Ok(Some(entry_of(&v).map_err(Abort)?)),
                    None => Ok(None),
                }
            };
            // Refunded: its money was returned, it moves none again (not
            // even as a "repeat" of its first withdrawal).
            if movement != Movement::Refund
                && let Some(r) = entry_at(Movement::Refund)?
            {
                return Err(Abort(BankError::ReferenceRefunded {
                    reference: reference.to_string(),
                    refund: r.transaction_id,
                }));
            }
            if let Some(first) = entry_at(movement)? {
                if first.account != account || first.delta != delta {
                    return Err(Abort(BankError::ReferenceReused {
                        reference: key.clone(),
                        existing: first.transaction_id,
                    }));
                }
                return Ok(first.transaction_id);
            }
            match movement {
                Movement::Withdrawal | Movement::Deposit => {}
                Movement::Refund => {
                    let nothing = |why: String| {
                        Abort(BankError::NothingToRefund {
                            reference: reference.to_string(),
                            why,
                        })
                    };
                    if let Some(d) = entry_at(Movement::Deposit)? {
                        return Err(nothing(format!("it deposited ({})", d.transaction_id)));
                    }
                    match entry_at(Movement::Withdrawal)? {
                        None => return Err(nothing("it withdrew nothing".into())),
                        Some(w) if w.account != account || -w.delta != amount => {
                            return Err(nothing(format!(
                                "it withdrew {} from {}, not {amount} from {account}",
                                -w.delta, w.account
                            )));
                        }
                        Some(_) => {}
                    }
                }
            }
            let balance = match tx.get(account_key(account))? {
                Some(v) => balance_of(&v).map_err(Abort)?,
                None => {
                    return Err(Abort(BankError::InvalidAccount {
                        account: account.to_string(),
                    }));
                }
            };
            let after = balance.checked_add(delta).ok_or_else(|| {
                Abort(BankError::Overflow {
                    account: account.to_string(),
                })
            })?;
            if after < 0 {
                return Err(Abort(BankError::InsufficientFunds {
                    account: account.to_string(),
                }));
            }
            let seq = match tx.get(NEXT_KEY)? {
                Some(v) => <[u8; 8]>::try_from(v.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| {
                        Abort(BankError::Storage("the journal counter is damaged".into()))
                    })?,
                None => 1,
            };
            let entry = JournalEntry {
                seq,
                reference: key.clone(),
                account: account.to_string(),
                delta,
                transaction_id: transaction_id(movement.id_prefix()),
            };
            let bytes = serde_json::to_vec(&entry).map_err(|e| Abort(storage(e)))?;
            tx.insert(account_key(account), &after.to_be_bytes()[..])?;
            tx.insert(reference_key(&key), bytes.clone())?;
            tx.insert(journal_key(seq), bytes)?;
            tx.insert(NEXT_KEY, &(seq + 1).to_be_bytes()[..])?;
            Ok(entry.transaction_id)
        });
        let id = outcome.map_err(|e| match e {
            sled::transaction::TransactionError::Abort(b) => b,
            sled::transaction::TransactionError::Storage(s) => storage(s),
        })?;
        // Durable before anyone is told. A blocking flush on tokio's blocking
        // pool (as the engine's own): under the virtual clock, time does not
        // jump while it runs.
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || tree.flush())
            .await
            .map_err(storage)?
            .map_err(storage)?;
        Ok(id)
    }

    /// The balance of one account, or InvalidAccountError.
    pub fn account(&self, number: &str) -> Result<Account, BankError> {
        match self.tree.get(account_key(number)).map_err(storage)? {
            Some(v) => Ok(Account {
                number: number.to_string(),
                balance: balance_of(&v)?,
            }),
            None => Err(BankError::InvalidAccount {
                account: number.to_string(),
            }),
        }
    }

    /// Every account, by number.
    pub fn accounts(&self) -> Result<Vec<Account>, BankError> {
        self.tree
            .scan_prefix(b"a/")
            .map(|kv| {
                let (k, v) = kv.map_err(storage)?;
                Ok(Account {
                    number: String::from_utf8_lossy(&k[2..]).into_owned(),
                    balance: balance_of(&v)?,
                })
            })
            .collect()
    }

    /// Every movement of money, oldest first.
    pub fn journal(&self) -> Result<Vec<JournalEntry>, BankError> {
        self.tree
            .scan_prefix(b"j/")
            .map(|kv| entry_of(&kv.map_err(storage)?.1))
            .collect()
    }

    /// Money withdrawn by transfers that have not deposited or refunded it
    /// yet: with the balances, it makes up what the bank was seeded with.
    pub fn in_flight(&self) -> Result<i64, BankError> {
        let mut open: std::collections::HashMap<String, i64> = Default::default();
        for e in self.journal()? {
            if let Some(base) = e.reference.strip_suffix("-withdrawal") {
                *open.entry(base.to_string()).or_default() -= e.delta;
            } else if let Some(base) = e
                .reference
                .strip_suffix("-deposit")
                .or_else(|| e.reference.strip_suffix("-refund"))
            {
                *open.entry(base.to_string()).or_default() -= e.delta;
            }
        }
        Ok(open.values().sum())
    }

    /// What a transfer's `movement` did, if anything.
    pub fn entry(
        &self,
        reference: &str,
        movement: Movement,
    ) -> Result<Option<JournalEntry>, BankError> {
        self.tree
            .get(reference_key(&movement.reference(reference)))
            .map_err(storage)?
            .map(|v| entry_of(&v))
            .transpose()
    }
}
