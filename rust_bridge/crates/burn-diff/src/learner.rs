//! The contract's model and training methods for a port built on burn-train: its own model,
//! `TrainStep`, `Batcher`, optimizer and learning rate, driven the way burn-train's `Learner` drives
//! them, with the harness's initial weights and batch order. Nothing here re-implements the port's
//! arithmetic; a port gives [`Lockstep`] the pieces it hands to `Learner::new` and its `DataLoader`.
//!
//! burn-train's single-device epoch (burn-train src/learner/supervised/strategies/single/epoch.rs)
//! runs, for each batch the loader yields: `learner.train_step(item)` (the model's
//! `TrainStep::step`), `learner.lr_step()` (the scheduler's `step`), then
//! `learner.optimizer_step(grads)` (the model's `TrainStep::optimize` with that rate). [`Lockstep::train`]
//! does exactly that, over batches the port's `Batcher` builds in the harness's order, and records
//! each step's loss (the value the Learner's `LossMetric` averages per epoch: one entry per batch)
//! and gradients. What the Learner adds around it (metrics, validation, checkpoints, the renderer)
//! does not change a number.
//!
//! ```ignore
//! let lockstep = Lockstep {
//!     model: Box::new(|d, device| ModelConfig::new(d).init(device)),
//!     item: Box::new(|x, y| Row { features: x.to_vec(), label: y as u8 }),
//!     batcher: RowBatcher,
//!     optimizer: Box::new(|| config.optimizer.init()),
//!     lr: Box::new(|| config.learning_rate.into()),
//!     batch_size: config.batch_size,
//!     loss: Box::new(|out: &ClassificationOutput| out.loss.clone()),
//! };
//! ```
//!
//! Parameters cross by the port's own names ([`crate::layout`]); a port with other names than the
//! reference declares the mapping in the harness's `[port.rename]`.

use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleSnapshot;
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::TrainStep;

use std::path::Path;

use crate::contract::unsupported;
use crate::contract::{
    Activations, OptimState, Port, PortInfo, Progress, Roundtrip, ScalerStats, SplitIndices, Table,
    TrainRequest, TrainTrace,
};
use crate::error::{input, Result};
use crate::layout::{burn_shapes, load_torch_params, torch_params, torch_shapes, values};
use crate::optim::{adam_state_to_torch, gradients, gradients_to_torch, with_adam_state};
use crate::tensor::{Matrix, Matrix64, Params};

/// Builds a value from nothing (the optimizer, the learning rate scheduler).
pub type Make<T> = Box<dyn Fn() -> T + Send + Sync>;
/// A function from `A` and `B` to `R`, shared across the server's threads.
pub type Func2<A, B, R> = Box<dyn Fn(A, B) -> R + Send + Sync>;
/// Builds the port's model for an input width, on a device.
pub type ModelFn<M> = Box<dyn Fn(usize, &Device) -> M + Send + Sync>;
/// One dataset item from a row of features and its label.
pub type ItemFn<I> = Box<dyn Fn(&[f32], f32) -> I + Send + Sync>;
/// The loss tensor of a training step's output.
pub type LossOf<O> = Box<dyn Fn(&O) -> Tensor<1> + Send + Sync>;
/// The model's inference forward.
pub type ForwardFn<M> = Box<dyn Fn(&M, Tensor<2>) -> Tensor<2> + Send + Sync>;

/// The pieces of a burn-train port that lockstep training needs, each the port's own.
pub struct Lockstep<M: TrainStep, I, B> {
    /// The port's model, freshly initialized for `n_features` inputs on `device` (its config's
    /// `init`).
    pub model: ModelFn<M>,
    /// One item of the port's dataset from a row of scaled features and its label.
    pub item: ItemFn<I>,
    /// The port's batcher, as its `DataLoader` uses it.
    pub batcher: B,
    /// The port's optimizer as it configures it (gradient clipping and weight decay included).
    pub optimizer: Make<ModuleOptimizer>,
    /// The learning rate or scheduler the port gives `Learner::new`.
    pub lr: Make<ModuleLrScheduler>,
    /// The batch size of the port's training `DataLoader`.
    pub batch_size: usize,
    /// The loss of a training step's output (a `ClassificationOutput`'s `loss`).
    pub loss: LossOf<M::Output>,
}

impl<M, I, B> Lockstep<M, I, B>
where
    M: TrainStep + Module + ModuleSnapshot,
    I: Clone,
    B: Batcher<I, M::Input>,
{
    /// The port's model holding `params` (by the port's names, PyTorch's layout).
    pub fn load(&self, params: &Params, n_features: usize, device: &Device) -> Result<M> {
        let mut model = (self.model)(n_features, device);
        load_torch_params(&mut model, params)?;
        Ok(model)
    }

    /// [`crate::Port::roundtrip`]: `params` loaded into the port's model and read back.
    pub fn roundtrip(
        &self,
        params: &Params,
        n_features: usize,
        device: &Device,
    ) -> Result<Roundtrip> {
        let model = self.load(params, n_features, device)?;
        Ok(Roundtrip {
            params: torch_params(&model)?,
            layouts: burn_shapes(&model),
        })
    }

    /// The input width of the model holding `params`, for a request that sends parameters only (the
    /// optimizer stage): the last dimension, in PyTorch's layout (`[out, in]` for a Linear weight), of
    /// the model's first parameter, found by its name in a model built with one input.
    fn input_width(&self, params: &Params, device: &Device) -> usize {
        let probe = (self.model)(1, device);
        torch_shapes(&probe)
            .first()
            .and_then(|(name, _)| params.get(name))
            .and_then(|t| t.shape.last().copied())
            .unwrap_or(1)
    }

    fn batch(&self, x: &Matrix, y: &[f32], rows: &[usize], device: &Device) -> M::Input {
        let items = rows
            .iter()
            .map(|&i| (self.item)(&x.data[i * x.d..(i + 1) * x.d], y[i]))
            .collect();
        self.batcher.batch(items, device)
    }

    /// One `TrainStep::step`: the step's loss and gradients by the port's names.
    fn step(&self, model: &M, batch: M::Input) -> Result<(f32, burn::optim::GradientsParams)> {
        let out = model.step(batch);
        let loss = values((self.loss)(&out.item));
        match loss.as_slice() {
            [v] => Ok((*v, out.grads)),
            v => input(format!(
                "a training step's loss has {} values, not 1",
                v.len()
            )),
        }
    }

    /// [`crate::Port::backward`]: the loss and gradients of the port's `TrainStep::step` on one batch
    /// built by its `Batcher`.
    pub fn backward(
        &self,
        params: &Params,
        x: &Matrix,
        y: &[f32],
        device: &Device,
    ) -> Result<(f32, Params)> {
        let ad = device.clone().autodiff();
        let model = self.load(params, x.d, &ad)?;
        let rows: Vec<usize> = (0..x.n).collect();
        let (loss, grads) = self.step(&model, self.batch(x, y, &rows, &ad))?;
        Ok((loss, gradients_to_torch(&model, &grads)?))
    }

    /// [`crate::Port::optimizer_step`]: one `TrainStep::optimize` with the port's optimizer at the
    /// scheduler's first rate, from `state` when given.
    pub fn optimizer_step(
        &self,
        params: &Params,
        grads: &Params,
        state: Option<&OptimState>,
        device: &Device,
    ) -> Result<(Params, OptimState)> {
        let ad = device.clone().autodiff();
        let model = self.load(params, self.input_width(params, &ad), &ad)?;
        let lr = (self.lr)().step();
        let mut optim = match state {
            Some(s) => with_adam_state(&self.optimizer, lr.base(), &model, s)?,
            None => (self.optimizer)(),
        };
        let g = gradients(&model, grads)?;
        let model = model.optimize(&mut optim, lr, g);
        Ok((torch_params(&model)?, adam_state_to_torch(&optim, &model)?))
    }

    /// [`crate::Port::train`]: the Learner's single-device loop over the harness's batch order (or the
    /// port's own, shuffled with `req.seed`, when the harness sends none), from the harness's
    /// initial weights (or the port's own initialization).
    pub fn train(
        &self,
        req: TrainRequest,
        progress: Progress<'_>,
        device: &Device,
    ) -> Result<TrainTrace> {
        let ad = device.clone().autodiff();
        let (n, d) = (req.x.n, req.x.d);
        if req.y.len() != n {
            return input(format!("{} labels for {n} rows", req.y.len()));
        }
        ad.seed(req.seed);
        let mut model = match &req.init {
            Some(init) => self.load(init, d, &ad)?,
            None => (self.model)(d, &ad),
        };
        let orders = req
            .orders
            .clone()
            .unwrap_or_else(|| own_orders(n, req.epochs, req.seed));
        let mut optim = (self.optimizer)();
        let mut sched = (self.lr)();
        let mut t = TrainTrace {
            init: torch_params(&model)?,
            ..TrainTrace::default()
        };
        for order in &orders {
            let mut total = 0.0f64;
            let mut batches = 0usize;
            for rows in order.chunks(self.batch_size.max(1)) {
                let (loss, grads) = self.step(&model, self.batch(&req.x, &req.y, rows, &ad))?;
                let record = t.step_loss.len() < req.record_steps;
                if record {
                    t.step_grads.push(gradients_to_torch(&model, &grads)?);
                }
                let lr = sched.step();
                model = model.optimize(&mut optim, lr, grads);
                if record {
                    t.step_params.push(torch_params(&model)?);
                }
                t.step_loss.push(loss);
                total += f64::from(loss);
                batches += 1;
            }
            let epoch_loss = total / batches.max(1) as f64;
            t.epoch_loss.push(epoch_loss);
            t.epoch_params.push(torch_params(&model)?);
            progress(t.epoch_loss.len(), epoch_loss);
        }
        t.final_params = torch_params(&model)?;
        t.state = adam_state_to_torch(&optim, &model)?;
        t.orders = orders;
        Ok(t)
    }
}

/// A port's own data preparation, for [`LearnerPort`]: the contract's data methods (see
/// [`crate::Port`]), each defaulting to "not implemented by the port".
#[allow(unused_variables)]
pub trait Prep: Send + Sync {
    /// [`crate::Port::load_csv`].
    fn load_csv(&self, path: &Path, label: &str) -> Result<Table> {
        unsupported("load_csv")
    }
    /// [`crate::Port::split`].
    fn split(&self, n: usize, test_size: f64, seed: u32) -> Result<SplitIndices> {
        unsupported("split")
    }
    /// [`crate::Port::fit_scaler`].
    fn fit_scaler(&self, x: &Matrix64, train_rows: &[usize]) -> Result<ScalerStats> {
        unsupported("fit_scaler")
    }
    /// [`crate::Port::transform`].
    fn transform(&self, x: &Matrix64, mean: &[f64], scale: &[f64]) -> Result<Matrix> {
        unsupported("transform")
    }
}

/// A port without data preparation of its own (the harness's data stages then SKIP).
pub struct NoPrep;

impl Prep for NoPrep {}

/// A whole [`crate::Port`] from a burn-train port's pieces: [`Lockstep`] for weights, backward, the
/// optimizer and training; the model's own forward for the forward stage (its output alone, under
/// the name of the module holding the model's last parameter: declare `[port] layers = "output"`)
/// and for predictions; its loss and metric on model outputs; its data preparation through [`Prep`].
pub struct LearnerPort<M: TrainStep, I, B> {
    /// Name, backend and switched-on faults.
    pub info: PortInfo,
    /// The device the port runs on (autodiff is added where gradients are needed).
    pub device: Device,
    /// The training pieces.
    pub lockstep: Lockstep<M, I, B>,
    /// The model's inference forward, as the port's code calls it (`|m, x| m.forward(x)`).
    pub forward: ForwardFn<M>,
    /// The port's loss on model outputs `[n, outputs]` and float targets `[n]`; `None` when the loss
    /// lives inside the training step only (the loss stage then SKIPs).
    pub loss: Option<Func2<Tensor<2>, Tensor<1>, Tensor<1>>>,
    /// The port's metric on model outputs and float targets; `None` when it has none.
    pub metric: Option<Func2<Tensor<2>, Tensor<1>, f64>>,
    /// The port's data preparation.
    pub prep: Box<dyn Prep>,
}

impl<M, I, B> LearnerPort<M, I, B>
where
    M: TrainStep + Module + ModuleSnapshot,
    I: Clone,
    B: Batcher<I, M::Input>,
{
    fn outputs(&self, params: &Params, x: &Matrix) -> Result<Tensor<2>> {
        let model = self.lockstep.load(params, x.d, &self.device)?;
        Ok((self.forward)(
            &model,
            matrix_tensor(&x.data, x.n, &self.device),
        ))
    }

    fn metric_of(&self, outputs: Tensor<2>, y: &[f32]) -> Result<f64> {
        match &self.metric {
            Some(metric) => Ok(metric(outputs, targets(y, &self.device))),
            None => unsupported("accuracy"),
        }
    }
}

fn matrix_tensor(data: &[f32], n: usize, device: &Device) -> Tensor<2> {
    let d = data.len().checked_div(n).unwrap_or(0);
    Tensor::from_data(TensorData::new(data.to_vec(), [n, d]), device)
}

fn targets(y: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(y.to_vec(), [y.len()]), device)
}

impl<M, I, B> Port for LearnerPort<M, I, B>
where
    M: TrainStep + Module + ModuleSnapshot,
    I: Clone + Send + Sync,
    B: Batcher<I, M::Input>,
{
    fn info(&self) -> PortInfo {
        self.info.clone()
    }
    fn load_csv(&self, path: &Path, label: &str) -> Result<Table> {
        self.prep.load_csv(path, label)
    }
    fn split(&self, n: usize, test_size: f64, seed: u32) -> Result<SplitIndices> {
        self.prep.split(n, test_size, seed)
    }
    fn fit_scaler(&self, x: &Matrix64, train_rows: &[usize]) -> Result<ScalerStats> {
        self.prep.fit_scaler(x, train_rows)
    }
    fn transform(&self, x: &Matrix64, mean: &[f64], scale: &[f64]) -> Result<Matrix> {
        self.prep.transform(x, mean, scale)
    }
    fn roundtrip(&self, params: &Params, n_features: usize) -> Result<Roundtrip> {
        self.lockstep.roundtrip(params, n_features, &self.device)
    }
    fn forward(&self, params: &Params, x: &Matrix) -> Result<Activations> {
        let out = self.outputs(params, x)?;
        let [n, w] = out.dims();
        let probe = (self.lockstep.model)(x.d, &self.device);
        let last = torch_shapes(&probe)
            .last()
            .map(|(name, _)| name.clone())
            .unwrap_or_default();
        let module = last
            .rsplit_once('.')
            .map_or(last.as_str(), |(m, _)| m)
            .to_string();
        Ok(Activations(vec![(module, Matrix::new(values(out), n, w)?)]))
    }
    fn loss(&self, p: &[f32], y: &[f32]) -> Result<(f32, Vec<f32>)> {
        match &self.loss {
            Some(loss) => loss_and_grad(p, y, &self.device, loss),
            None => unsupported("loss"),
        }
    }
    fn backward(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(f32, Params)> {
        self.lockstep.backward(params, x, y, &self.device)
    }
    fn optimizer_step(
        &self,
        params: &Params,
        grads: &Params,
        state: Option<&OptimState>,
    ) -> Result<(Params, OptimState)> {
        self.lockstep
            .optimizer_step(params, grads, state, &self.device)
    }
    fn train(&self, req: TrainRequest, progress: Progress<'_>) -> Result<TrainTrace> {
        self.lockstep.train(req, progress, &self.device)
    }
    fn evaluate(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(Vec<f32>, f64)> {
        let out = self.outputs(params, x)?;
        let metric = self.metric_of(out.clone(), y)?;
        Ok((values(out), metric))
    }
    fn accuracy(&self, outputs: &[f32], y: &[f32]) -> Result<f64> {
        self.metric_of(matrix_tensor(outputs, y.len(), &self.device), y)
    }
}

/// A permutation per epoch from `seed` (splitmix64 keys, sorted), for a run the harness leaves to the
/// port: a Learner port's `DataLoaderBuilder::shuffle(seed)` draws its own, which no two runs compare.
fn own_orders(n: usize, epochs: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut state = seed;
    (0..epochs)
        .map(|_| {
            let mut keyed: Vec<(u64, usize)> = (0..n)
                .map(|i| {
                    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let mut z = state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    (z ^ (z >> 31), i)
                })
                .collect();
            keyed.sort_unstable();
            keyed.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

/// The loss of `outputs` (row-major `[n, outputs]`, `outputs = p.len() / y.len()`) against `y`, and
/// its gradient with respect to the outputs, for [`crate::Port::loss`]: `loss` is the port's own
/// loss function on a model output and its float targets.
pub fn loss_and_grad(
    p: &[f32],
    y: &[f32],
    device: &Device,
    loss: impl Fn(Tensor<2>, Tensor<1>) -> Tensor<1>,
) -> Result<(f32, Vec<f32>)> {
    if y.is_empty() || p.is_empty() || !p.len().is_multiple_of(y.len()) {
        return input("predictions and targets must be non-empty, with the same number of rows");
    }
    let ad = device.clone().autodiff();
    let out = Tensor::<2>::from_data(
        TensorData::new(p.to_vec(), [y.len(), p.len() / y.len()]),
        &ad,
    )
    .require_grad();
    let target = Tensor::<1>::from_data(TensorData::new(y.to_vec(), [y.len()]), &ad);
    let value = loss(out.clone(), target);
    let v = values(value.clone().inner());
    let grad = out.grad(&value.backward()).map(values).unwrap_or_default();
    match v.as_slice() {
        [v] => Ok((*v, grad)),
        v => input(format!("the loss has {} values, not 1", v.len())),
    }
}

#[cfg(test)]
mod tests {
    use burn::data::dataloader::batcher::Batcher;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::AdamConfig;
    use burn::tensor::{Device, Tensor, TensorData};
    use burn::train::{RegressionOutput, TrainOutput, TrainStep};

    use super::{own_orders, Lockstep};
    use crate::contract::TrainRequest;
    use crate::tensor::Matrix;

    /// A port's model as burn-train wants it: a Linear regression with its own TrainStep.
    #[derive(Module, Debug)]
    struct Tiny {
        fc: Linear,
    }

    #[derive(Clone, Debug)]
    struct Row(Vec<f32>, f32);

    struct Rows;

    impl Batcher<Row, (Tensor<2>, Tensor<2>)> for Rows {
        fn batch(&self, items: Vec<Row>, device: &Device) -> (Tensor<2>, Tensor<2>) {
            let (n, d) = (items.len(), items[0].0.len());
            let x: Vec<f32> = items.iter().flat_map(|r| r.0.clone()).collect();
            let y: Vec<f32> = items.iter().map(|r| r.1).collect();
            (
                Tensor::from_data(TensorData::new(x, [n, d]), device),
                Tensor::from_data(TensorData::new(y, [n, 1]), device),
            )
        }
    }

    impl TrainStep for Tiny {
        type Input = (Tensor<2>, Tensor<2>);
        type Output = RegressionOutput;

        fn step(&self, (x, y): (Tensor<2>, Tensor<2>)) -> TrainOutput<RegressionOutput> {
            let out = self.fc.forward(x);
            let loss = (out.clone() - y.clone()).powi_scalar(2).mean();
            TrainOutput::new(self, loss.backward(), RegressionOutput::new(loss, out, y))
        }
    }

    fn lockstep() -> Lockstep<Tiny, Row, Rows> {
        Lockstep {
            model: Box::new(|d, device| Tiny {
                fc: LinearConfig::new(d, 1).init(device),
            }),
            item: Box::new(|x, y| Row(x.to_vec(), y)),
            batcher: Rows,
            optimizer: Box::new(|| AdamConfig::new().with_epsilon(1e-8).init()),
            lr: Box::new(|| 1e-2.into()),
            batch_size: 4,
            loss: Box::new(|out: &RegressionOutput| out.loss.clone()),
        }
    }

    fn data(n: usize, d: usize) -> (Matrix, Vec<f32>) {
        let x: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
            .collect();
        let y = (0..n).map(|i| (i % 3) as f32 - 1.0).collect();
        (Matrix::new(x, n, d).unwrap(), y)
    }

    #[test]
    fn training_takes_the_order_and_init_and_records_what_its_own_steps_give() {
        let (device, lock) = (Device::flex(), lockstep());
        let (x, y) = data(10, 3);
        let init = super::torch_params(&(lock.model)(3, &device)).unwrap();
        let orders = vec![vec![9, 1, 5, 3, 0, 2, 8, 4, 6, 7], (0..10).rev().collect()];
        let req = TrainRequest {
            x: x.clone(),
            y: y.clone(),
            init: Some(init.clone()),
            orders: Some(orders.clone()),
            epochs: 2,
            seed: 0,
            record_steps: 2,
            dropout: false,
        };
        let mut epochs = Vec::new();
        let trace = lock
            .train(req, &mut |e, _| epochs.push(e), &device)
            .unwrap();
        assert_eq!(trace.orders, orders);
        assert_eq!(trace.init, init);
        assert_eq!(epochs, vec![1, 2]);
        // 10 rows in batches of 4: 3 steps an epoch, the last of 2 rows.
        assert_eq!(trace.step_loss.len(), 6);
        assert_eq!(trace.step_grads.len(), 2);
        // The first step is the port's backward on the order's first 4 rows, from the init...
        let rows = &orders[0][..4];
        let first = Matrix::new(x.rows(rows), 4, 3).unwrap();
        let ys: Vec<f32> = rows.iter().map(|&i| y[i]).collect();
        let (loss, grads) = lock.backward(&init, &first, &ys, &device).unwrap();
        assert_eq!(loss, trace.step_loss[0]);
        assert_eq!(grads, trace.step_grads[0]);
        // ... and its update is one optimizer step from those gradients, with a fresh optimizer.
        let (params, state) = lock.optimizer_step(&init, &grads, None, &device).unwrap();
        assert_eq!(params, trace.step_params[0]);
        assert_eq!(state.step, 1);
        // Another order gives another first step: the order is the one used.
        let other = Matrix::new(x.rows(&[0, 1, 2, 3]), 4, 3).unwrap();
        let ys: Vec<f32> = [0, 1, 2, 3].iter().map(|&i| y[i]).collect();
        assert_ne!(lock.backward(&init, &other, &ys, &device).unwrap().1, grads);
    }

    #[test]
    fn own_orders_are_permutations_that_change_with_the_seed_and_the_epoch() {
        let a = own_orders(50, 2, 1);
        let mut sorted = a[0].clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(a[0], a[1]);
        assert_ne!(a, own_orders(50, 2, 2));
        assert_eq!(a, own_orders(50, 2, 1));
    }
}
