//! `emod user add|list|disable|enable|passwd`: user administration straight on the database
//! (works before any admin exists, and while the daemon is stopped).

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{bail, Context};
use emo_api_types::Role;

use crate::auth::{hash_password, validate_display_name, validate_new_username, validate_password};
use crate::config::Config;
use crate::store::users::UserChanges;
use crate::store::{now_ms, Store, UserRow};

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is asked for twice, or read from stdin with --password-stdin.
    Add {
        username: String,
        /// agent or admin
        #[arg(long, default_value = "agent")]
        role: Role,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from the first line of standard input (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: their tokens are revoked and they can no longer log in.
    Disable { username: String },
    /// Re-enable a disabled user.
    Enable { username: String },
    /// Make a user an agent or an admin (the last active admin cannot be demoted).
    Role {
        username: String,
        /// agent or admin
        role: Role,
    },
    /// Set a new password (revokes the user's tokens).
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn read_password(from_stdin: bool, min_len: usize) -> anyhow::Result<String> {
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("no terminal to ask for a password: use --password-stdin");
        }
        let a = rpassword::prompt_password("Password: ")?;
        let b = rpassword::prompt_password("Repeat password: ")?;
        if a != b {
            bail!("the passwords differ");
        }
        a
    };
    validate_password(&pw, min_len).map_err(|e| anyhow::anyhow!(e))?;
    Ok(pw)
}

fn find(store: &Store, name: &str) -> anyhow::Result<UserRow> {
    store
        .user_by_name(name)?
        .with_context(|| format!("no user named `{name}`"))
}

/// `emod user …`: one function per subcommand, each reading like the help it implements.
pub fn run(cmd: UserCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::open(config)?;
    store.migrate()?;
    let min = config.auth.min_password_len;
    match cmd {
        UserCommand::Add {
            username,
            role,
            display_name,
            password_stdin,
        } => add(&store, &username, role, display_name, password_stdin, min)?,
        UserCommand::List { json } => list(&store, json)?,
        UserCommand::Disable { username } => {
            let u = find(&store, &username)?;
            change(&store, &u, |c| c.disabled = Some(true))?;
            println!("disabled `{username}` and revoked their tokens");
        }
        UserCommand::Enable { username } => {
            let u = find(&store, &username)?;
            change(&store, &u, |c| c.disabled = Some(false))?;
            println!("enabled `{username}`");
        }
        UserCommand::Role { username, role } => set_role(&store, &username, role)?,
        UserCommand::Passwd {
            username,
            password_stdin,
        } => {
            let u = find(&store, &username)?;
            let hash = hash_password(&read_password(password_stdin, min)?)?;
            change(&store, &u, |c| c.password_hash = Some(hash))?;
            println!("password of `{username}` changed; their tokens are revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Apply the changes `set` makes to `user`.
fn change(store: &Store, user: &UserRow, set: impl FnOnce(&mut UserChanges)) -> anyhow::Result<()> {
    let mut changes = UserChanges::default();
    set(&mut changes);
    store.update_user(&user.id, &changes)?;
    Ok(())
}

/// `emod user add`: a new account with a password read from the terminal or standard input.
fn add(
    store: &Store,
    username: &str,
    role: Role,
    display_name: Option<String>,
    password_stdin: bool,
    min_password_len: usize,
) -> anyhow::Result<()> {
    validate_new_username(username).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(d) = &display_name {
        validate_display_name(d).map_err(|e| anyhow::anyhow!(e))?;
    }
    if store.user_by_name(username)?.is_some() {
        bail!("username `{username}` is taken");
    }
    let pw = read_password(password_stdin, min_password_len)?;
    let row = UserRow {
        id: uuid::Uuid::now_v7().to_string(),
        username: username.to_string(),
        display_name,
        role: role.as_str().into(),
        password_hash: hash_password(&pw)?,
        disabled: false,
        created_at: now_ms(),
    };
    store.create_user(&row)?;
    println!("created {role} `{username}`");
    Ok(())
}

/// `emod user list`: a table, or JSON with `--json`.
fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let users = store
        .list_users()?
        .iter()
        .map(UserRow::to_api)
        .collect::<Result<Vec<_>, _>>()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&users)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<6} {:<9} {:<20} CREATED",
        "USERNAME", "ROLE", "STATE", "DISPLAY NAME"
    );
    for u in users {
        println!(
            "{:<24} {:<6} {:<9} {:<20} {}",
            u.username,
            u.role,
            if u.disabled { "disabled" } else { "active" },
            // Names stored before control characters were refused must not drive the terminal.
            u.display_name
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>(),
            u.created_at.format("%Y-%m-%d %H:%M")
        );
    }
    Ok(())
}

/// `emod user role`: the last active admin cannot be made an agent.
fn set_role(store: &Store, username: &str, role: Role) -> anyhow::Result<()> {
    let u = find(store, username)?;
    if u.role()? == role {
        println!("`{username}` is already {role}");
        return Ok(());
    }
    if role == Role::Agent && !u.disabled && store.count_active_admins()? <= 1 {
        bail!("`{username}` is the last active admin: make another admin first");
    }
    change(store, &u, |c| c.role = Some(role.as_str().into()))?;
    println!("`{username}` is now {role} (takes effect within auth.token_cache_secs)");
    Ok(())
}
