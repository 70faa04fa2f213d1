//! A TCP gate between the keyward instances and PostgreSQL: open, it
//! relays; closed, it cuts every connection through it and refuses new
//! ones, which is what the instances see when the database server stops.
//! (Stopping the machine's PostgreSQL itself would fail every other test
//! running on it at the same time.)

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::Mutex,
    task::JoinHandle,
};

pub struct Gate {
    pub port: u16,
    target: SocketAddr,
    acceptor: Mutex<Option<JoinHandle<()>>>,
    relays: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Gate {
    pub async fn open_to(target: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the gate");
        let port = listener.local_addr().unwrap().port();
        let gate = Gate {
            port,
            target,
            acceptor: Mutex::new(None),
            relays: Arc::default(),
        };
        gate.accept_on(listener).await;
        gate
    }

    /// Cuts every relayed connection and stops listening: new connections
    /// are refused.
    pub async fn close(&self) {
        if let Some(acceptor) = self.acceptor.lock().await.take() {
            acceptor.abort();
            let _ = acceptor.await;
        }
        for relay in self.relays.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn reopen(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the gate's port again");
        self.accept_on(listener).await;
    }

    async fn accept_on(&self, listener: TcpListener) {
        let target = self.target;
        let relays = self.relays.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut relays = relays.lock().unwrap();
                relays.retain(|relay| !relay.is_finished());
                relays.push(relay);
            }
        });
        *self.acceptor.lock().await = Some(acceptor);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Ok(mut acceptor) = self.acceptor.try_lock() {
            if let Some(acceptor) = acceptor.take() {
                acceptor.abort();
            }
        }
        for relay in self.relays.lock().unwrap().drain(..) {
            relay.abort();
        }
    }
}
